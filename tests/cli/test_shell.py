"""``crawlmesh shell`` driven as a user drives it: under a pseudo-terminal,
typing at the prompt."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawlmesh import Headers, Request, Response
from crawlmesh._cli._shell import view

PROMPT = ">>> "


class Session:
    """A command on a pseudo-terminal: what it printed, and a way to type."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self._master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True
        )
        os.close(slave)
        self.seen = ""

    def read_until(self, text: str, timeout: float = 30) -> str:
        """Everything printed up to and including ``text`` (consumed)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not printed; got:\n{self.seen}"
            ready, _, _ = select.select([self._master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self._master, 4096)
                except OSError:  # (EIO: the other side closed)
                    chunk = b""
                assert chunk, f"the shell ended before {text!r}; got:\n{self.seen}"
                self.seen += chunk.decode(errors="replace").replace("\r\n", "\n")
        head, _, self.seen = self.seen.partition(text)
        return head + text

    def type(self, line: str) -> str:
        """Type ``line`` and return what it printed before the next prompt."""
        os.write(self._master, line.encode() + b"\n")
        echoed = self.read_until(PROMPT)
        return echoed.removesuffix(PROMPT).partition(line)[2].strip()

    def close(self) -> int:
        try:
            return self.proc.wait(30)
        finally:
            os.close(self._master)


@pytest.fixture
def browser(tmp_path: Path) -> tuple[str, Path]:
    """A $BROWSER that writes the URL it is asked to open to a file."""
    opened = tmp_path / "opened.txt"
    script = tmp_path / "browser.py"
    script.write_text(f"import sys\nopen({str(opened)!r}, 'a').write(sys.argv[1] + '\\n')\n")
    return f"{sys.executable} {script} %s", opened


def test_shell_fetches_and_rebinds_response_and_views_it(
    crawlmesh_cli: Path,
    cli_project: Path,
    cli_env: dict[str, str],
    site_process_url: str,
    browser: tuple[str, Path],
) -> None:
    command, opened = browser
    env = {**cli_env, "BROWSER": command, "TERM": "dumb"}
    shell = Session(
        [str(crawlmesh_cli), "shell", f"{site_process_url}/p/3", "--repl", "python"],
        cwd=cli_project,
        env=env,
    )
    try:
        intro = shell.read_until(PROMPT)
        assert f"response: HTTP 200 {site_process_url}/p/3 via node direct" in intro
        assert "fetch(url)" in intro  # the banner names what is at hand
        assert shell.type("response.status") == "200"
        assert shell.type("response.css('span.sku::text').get()") == "'SKU-000003'"
        assert shell.type("request.url") == repr(f"{site_process_url}/p/3")
        assert shell.type("spider.name, settings.robots.obey") == "('spider', True)"

        printed = shell.type(f"fetch({site_process_url + '/p/4'!r})")
        assert printed == f"response: HTTP 200 {site_process_url}/p/4 via node direct"
        assert shell.type("response.url") == repr(f"{site_process_url}/p/4")
        assert shell.type("request.url") == repr(f"{site_process_url}/p/4")

        # A 404 is a response too; a URL that is not one is refused in one line.
        assert "HTTP 404" in shell.type(f"fetch({site_process_url + '/missing/1'!r})")
        assert shell.type("response.status") == "404"
        assert shell.type("fetch('example.com')") == (
            "'example.com' is not an http(s) URL (e.g. https://example.com)"
        )
        assert shell.type("response.status") == "404"  # (unchanged)

        shell.type(f"fetch({site_process_url + '/p/4'!r})")
        printed = shell.type("view(response)")
        assert printed.startswith("opened "), printed
        assert printed.endswith(" in a browser"), printed
        path = Path(printed.removeprefix("opened ").removesuffix(" in a browser"))
        assert opened.read_text() == path.as_uri() + "\n"
        body = path.read_bytes()
        assert f'<base href="{site_process_url}/p/4">'.encode() in body
        assert b"SKU" not in body  # (page 4 carries no item)
        path.unlink()

        os.write(shell._master, b"exit()\n")
    finally:
        code = shell.close()
    assert code == 0


def test_view_prints_the_path_when_there_is_no_browser(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No browser on this machine to fail to find: webbrowser's answer is faked.
    monkeypatch.setattr("webbrowser.open", lambda url: False)
    url = "http://example.test/a/b.html"
    response = Response(
        url,
        200,
        Headers([("content-type", "text/html")]),
        b"<html><head><title>t</title></head><body><img src='x.png'></body></html>",
        Request(url),
    )
    view(response)
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("no browser to open it: ")
    path = Path(printed.removeprefix("no browser to open it: "))
    try:
        assert path.suffix == ".html"
        assert path.read_bytes() == (
            b'<html><head><base href="http://example.test/a/b.html"><title>t</title></head>'
            b"<body><img src='x.png'></body></html>"
        )
    finally:
        path.unlink()
