"""``crawlmesh shell [URL]``: a Python prompt with a fetched page at hand.

Trio and a blocking REPL: each ``fetch()`` is a ``trio.run`` of its own in
the REPL's thread, not a call into a Trio loop kept in a background thread
(a ``trio.from_thread`` portal). A kept loop would let fetches share
connections, but an engine runs one crawl, so every fetch builds its own
engine either way; and a loop in another thread would not see Ctrl-C, which
Python delivers to the main thread, where the REPL waits. In the REPL's
thread, Ctrl-C interrupts the fetch as ``KeyboardInterrupt``, the prompt
reports it and comes back, and nothing runs between prompts: no task
touches the objects being inspected.
"""

from __future__ import annotations

import argparse
import code
import importlib
import importlib.util
import mimetypes
import os
import re
import sys
import tempfile
import webbrowser
from pathlib import Path
from typing import Any

from .._exceptions import UsageError
from .._request import Request
from .._response import Response
from .._settings import Settings
from .._spider import Spider
from ._probe import check_url, fetch_once, not_fetched

__all__ = ["Shell", "add_shell_parser", "run_shell", "view"]

_HEAD = re.compile(rb"<head[^>]*>", re.IGNORECASE)

_HELP = """\
  response, request   what the last fetch() got, and the request it sent
  fetch(url)          fetch again as the crawl would (rebinds response, request)
  view(response)      open the body in a browser (or print the file's path)
  spider, settings    the spider and its resolved settings
  exit()              leave"""


def add_shell_parser(sub: Any) -> argparse.ArgumentParser:
    shell: argparse.ArgumentParser = sub.add_parser(
        "shell",
        help="a Python prompt with a fetched response (response, fetch(), view())",
        description="Fetch URL (if given) as a crawl would and open a Python prompt "
        "(IPython when installed) with response, request, fetch(url), view(response), "
        "spider and settings.\n\n" + _HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    shell.add_argument("url", metavar="URL", nargs="?")
    shell.add_argument(
        "--repl",
        choices=["auto", "ipython", "python"],
        default="auto",
        help="the prompt: IPython if installed (auto), or the standard one",
    )
    return shell


def view(response: Response | None = None) -> None:
    """Write ``response``'s body to a temporary file and open it in a
    browser; print the file's path when there is no browser. A page gets a
    ``<base href>`` so its relative links and images still resolve.
    """
    if response is None:
        raise TypeError("view() needs a response: view(response)")
    body = response.body
    suffix = mimetypes.guess_extension(response.content_type) or ".txt"
    if response.content_type == "text/html":
        suffix = ".html"
        if b"<base" not in body[:4096].lower():
            base = f'<base href="{response.url}">'.encode()
            head = _HEAD.search(body)
            body = body[: head.end()] + base + body[head.end() :] if head else base + body
    fd, path = tempfile.mkstemp(prefix="crawlmesh-", suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(body)
    if webbrowser.open(Path(path).as_uri()):
        print(f"opened {path} in a browser")
    else:
        print(f"no browser to open it: {path}")


class Shell:
    """The prompt's namespace and its ``fetch()``.

    Args:
        spider: whose settings, filters and hooks fetches go through.
        settings: its resolved settings.
    """

    def __init__(self, spider: Spider, settings: Settings) -> None:
        self._spider = spider
        self._settings = settings
        self.namespace: dict[str, Any] = {
            "fetch": self.fetch,
            "view": view,
            "request": None,
            "response": None,
            "spider": spider,
            "settings": settings,
            "Request": Request,
        }

    def fetch(self, target: str | Request, **request_args: Any) -> None:
        """Fetch ``target`` (a URL, with ``Request`` arguments, or a
        Request) and bind ``response`` and ``request`` to what came back."""
        if isinstance(target, Request):
            request = target
        else:
            try:
                check_url(target)
            except UsageError as exc:
                print(exc)
                return
            request = Request(target, **request_args)

        got, stats = fetch_once(self._spider, self._settings, request)
        if got is None:
            print(not_fetched(request.url, stats))
            return
        response = got.response
        if response is None:
            print(f"fetching {request.url} failed: {got.error}")
            return
        self.namespace["request"] = got.request
        self.namespace["response"] = response
        moved = f" (redirected from {response.redirects[0]})" if response.redirects else ""
        print(f"response: HTTP {response.status} {response.url}{moved} via node {response.node}")

    def interact(self, repl: str) -> None:
        banner = "crawlmesh shell: Python objects at hand:\n" + _HELP
        if repl != "python" and importlib.util.find_spec("IPython") is not None:
            print(banner)
            ipython = importlib.import_module("IPython")
            ipython.start_ipython(argv=["--no-banner"], user_ns=self.namespace)
            return
        if repl == "ipython":
            raise UsageError("--repl ipython: IPython is not installed")
        try:  # line editing and Tab completion where the readline module exists
            import readline
            import rlcompleter

            readline.set_completer(rlcompleter.Completer(self.namespace).complete)
            readline.parse_and_bind("tab: complete")
        except ImportError:  # pragma: no cover (a Python built without readline)
            pass
        code.interact(banner=banner, local=self.namespace, exitmsg="")


def run_shell(spider: Spider, settings: Settings, url: str | None, repl: str) -> int:
    """Fetch ``url`` (if any) and hand the prompt to the user until they leave."""
    shell = Shell(spider, settings)
    if url:
        shell.fetch(url)
    sys.stdout.flush()
    shell.interact(repl)
    return 0
