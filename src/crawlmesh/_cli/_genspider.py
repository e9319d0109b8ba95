"""``crawlmesh genspider NAME DOMAIN``: a spider module from a template.

The templates are files of this package (``templates/*.py.tmpl``), filled
in with :class:`string.Template` (``$name``, ``$classname``, ``$domain``,
``$start_url``, ``$origin``): Python source a reader can check as such.
"""

from __future__ import annotations

import argparse
import ipaddress
import keyword
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit

from .._exceptions import UsageError
from ._project import SPIDERS_DIR

__all__ = ["TEMPLATES", "Target", "add_genspider_parser", "cmd_genspider", "render", "target_of"]

TEMPLATES = ("basic", "crawl", "sitemap")

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


@dataclass(frozen=True)
class Target:
    """Where a new spider starts: the host its ``allowed_domains`` name,
    the site's origin and its start URL, and a note for the user when a
    URL was given for a domain."""

    host: str
    origin: str
    start_url: str
    note: str | None = None


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return len(host) <= 253 and _HOSTNAME.match(host) is not None
    return True


def target_of(domain: str) -> Target:
    """Read ``DOMAIN``: a host (``books.example``, ``127.0.0.1:8080``) or a
    URL (its host is the domain, the URL the start URL).

    Raises:
        UsageError: neither a host nor an http(s) URL.
    """
    if "://" in domain:
        parts = urlsplit(domain)
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https") or not _valid_host(host):
            raise UsageError(f"DOMAIN {domain!r}: not a host nor an http(s) URL")
        netloc = parts.netloc.rpartition("@")[2]  # (no credentials in the source)
        origin = f"{parts.scheme}://{netloc}"
        start = origin + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        note = f"{domain} is a URL: the spider's domain is its host {host}, the URL its start"
        return Target(host, origin, start, note)
    host, sep, port = domain.lower().partition(":")
    host = host.rstrip(".")
    if not _valid_host(host) or (sep and not port.isdigit()):
        raise UsageError(
            f"DOMAIN {domain!r} is not a host name (e.g. books.example, or 127.0.0.1:8080)"
        )
    origin = f"https://{host}{sep}{port}"
    return Target(host, origin, origin + "/")


def class_name(name: str) -> str:
    """``books_eu`` -> ``BooksEuSpider``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) + "Spider"


def render(template: str, name: str, target: Target) -> str:
    """The source of spider ``name`` from ``template`` (one of :data:`TEMPLATES`)."""
    text = resources.files(__package__).joinpath("templates", f"{template}.py.tmpl").read_text()
    return Template(text).substitute(
        name=name,
        classname=class_name(name),
        domain=target.host,
        start_url=target.start_url,
        origin=target.origin,
    )


def _check_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise UsageError(
            f"NAME {name!r}: a spider's name here is its module's, so a Python identifier "
            "not starting with _ (e.g. books_eu)"
        )


def cmd_genspider(args: argparse.Namespace) -> int:
    _check_name(args.name)
    target = target_of(args.domain)
    path = Path(SPIDERS_DIR) / f"{args.name}.py"
    if path.exists() and not args.force:
        raise UsageError(f"{path} exists (--force overwrites it)")
    source = render(args.template, args.name, target)
    if target.note is not None:
        print(f"crawlmesh: note: {target.note}", file=sys.stderr)
    directory = path.parent
    if not directory.is_dir():
        directory.mkdir(parents=True)
        (directory / "__init__.py").write_text("")
    path.write_text(source)
    print(
        f"crawlmesh: wrote {path} (template {args.template}); crawl it: "
        f"crawlmesh crawl {args.name}",
        file=sys.stderr,
    )
    return 0


def add_genspider_parser(sub: Any) -> None:
    p = sub.add_parser(
        "genspider",
        help="write spiders/NAME.py from a template",
        description="Write ./spiders/NAME.py, a spider named NAME for DOMAIN, from a "
        "template: basic (a Spider that follows links), crawl (a CrawlSpider with "
        "rules) or sitemap (a SitemapSpider). An existing file is kept unless --force.",
    )
    p.add_argument("name", metavar="NAME", help="the spider's name and module (books_eu)")
    p.add_argument(
        "domain", metavar="DOMAIN", help="its site's host (books.example), or a start URL"
    )
    p.add_argument("-t", "--template", choices=TEMPLATES, default="basic", help="default: basic")
    p.add_argument("--force", action="store_true", help="overwrite spiders/NAME.py")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
