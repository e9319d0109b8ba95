"""Sitemaps served on loopback: a site of fixed files, and helpers to write
urlsets and indexes."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from typing import Any

import trio

from crawlmesh import SitemapSpider, SiteRequest, SiteResponse

XML = [("Content-Type", "application/xml")]
GZIP = [("Content-Type", "application/gzip")]
HTML = [("Content-Type", "text/html; charset=utf-8")]
TEXT = [("Content-Type", "text/plain; charset=utf-8")]
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
XHTML = 'xmlns:xhtml="http://www.w3.org/1999/xhtml"'


class Files:
    """Serves ``files`` (path → response), pages under /page/ and /product/
    (any name), and 404 for the rest. Every request's target is in ``hits``."""

    def __init__(self, files: dict[str, SiteResponse] | None = None) -> None:
        self.files: dict[str, SiteResponse] = dict(files or {})
        self.hits: list[str] = []

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        self.hits.append(request.target)
        found = self.files.get(request.target)
        if found is not None:
            return found
        if request.target.startswith("/page/") or request.target.startswith("/product/"):
            body = f"<html><title>{request.target}</title></html>".encode()
            return SiteResponse(200, body, HTML)
        return SiteResponse(404, b"not found", HTML)

    def add(self, path: str, body: bytes, headers: list[tuple[str, str]] = XML) -> None:
        self.files[path] = SiteResponse(200, body, headers)

    def add_gzip(self, path: str, body: bytes) -> None:
        """A gzip file served as application/gzip (not a Content-Encoding)."""
        self.files[path] = SiteResponse(200, gzip.compress(body), GZIP)


def url_entry(
    loc: str, *, lastmod: str = "", priority: str = "", alternates: Iterable[str] = ()
) -> str:
    extra = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
    extra += f"<priority>{priority}</priority>" if priority else ""
    extra += "".join(
        f'<xhtml:link rel="alternate" hreflang="x{i}" href="{href}"/>'
        for i, href in enumerate(alternates)
    )
    return f"<url><loc>{loc}</loc>{extra}</url>"


def urlset(*entries: str) -> bytes:
    """A urlset of ``entries`` (plain URLs, or ``<url>`` elements)."""
    body = "".join(e if e.startswith("<") else url_entry(e) for e in entries)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {NS} {XHTML}>{body}</urlset>'.encode()


def index(*locs: str, lastmod: str = "") -> bytes:
    mod = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
    body = "".join(f"<sitemap><loc>{loc}</loc>{mod}</sitemap>" for loc in locs)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex {NS}>{body}</sitemapindex>'.encode()
    )


class Pages(SitemapSpider):
    """A SitemapSpider whose pages yield their URL (and the callback)."""

    name = "sitemaps"

    def parse(self, response: Any) -> Any:
        yield {"url": response.url, "callback": "parse"}


def urls(items: list[dict[str, Any]]) -> set[str]:
    return {item["url"] for item in items}
