"""The Response handed to spider callbacks, with Scrapy-compatible helpers."""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import msgspec
import parsel
from w3lib.encoding import (
    html_body_declared_encoding,
    http_content_type_encoding,
    read_bom,
    to_unicode,
)

from ._exceptions import NotTextResponse
from ._request import Request
from ._selector import html_selector, utf8_html_selector
from ._util._content_type import is_markup, response_mime
from ._util._url import LinkJoiner, base_url_of, strip_href

__all__ = ["Headers", "Response"]

# Where a <base href> can be, as w3lib's get_base_url looks for it.
_BASE_TAG = re.compile(rb"<base", re.IGNORECASE)
# The href of the first <base> that has one (in the page's first 4 KiB).
_BASE_HREF = re.compile(
    r"""<base\b[^>]*?\shref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE
)


def _c1_controls(exc: UnicodeError) -> tuple[str, int]:
    # WHATWG's windows-1252 maps the five bytes Python's cp1252 leaves
    # undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) to the C1 controls U+0081...
    if isinstance(exc, UnicodeDecodeError):
        return "".join(map(chr, exc.object[exc.start : exc.end])), exc.end
    raise exc


codecs.register_error("crawlmesh_windows_1252", _c1_controls)


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only response headers.

    Repeated headers are joined with ``", "`` on lookup; :meth:`get_list`
    returns them one by one (use it for ``Set-Cookie``).
    """

    __slots__ = ("_items", "_map")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = list(items)
        self._map: dict[str, str] | None = None

    def _index(self) -> dict[str, str]:
        if self._map is None:
            m: dict[str, str] = {}
            for k, v in self._items:
                k = k.lower()
                m[k] = f"{m[k]}, {v}" if k in m else v
            self._map = m
        return self._map

    def __getitem__(self, key: str) -> str:
        return self._index()[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index())

    def __len__(self) -> int:
        return len(self._index())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._index()

    def get_list(self, key: str) -> list[str]:
        """Every value of ``key``, in order."""
        key = key.lower()
        return [v for k, v in self._items if k.lower() == key]

    def raw(self) -> list[tuple[str, str]]:
        """The headers as received, in order."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Response:
    """A fetched response.

    Attributes:
        url: the final URL, after redirects.
        status: HTTP status code.
        headers: response headers.
        body: the body, decompressed.
        request: the :class:`Request` that produced it.
        redirects: URLs that redirected here, oldest first.
        elapsed: seconds from sending the request to the end of the body.
        node: the name of the egress node that fetched it.
        session_moved: the request's session was moved to this node because
            its previous node failed; the session's cookie jar was reset.
        content_type: what the body is (``"text/html"``, ``"image/png"``...):
            the Content-Type's type and subtype, or sniffed from the body
            when the header gives none (the README, "What you can use").
    """

    __slots__ = (
        "_base_url",
        "_bom",
        "_content_type",
        "_encoding",
        "_joiner",
        "_selector",
        "_text",
        "body",
        "elapsed",
        "headers",
        "node",
        "redirects",
        "request",
        "session_moved",
        "status",
        "url",
    )

    def __init__(
        self,
        url: str,
        status: int,
        headers: Headers,
        body: bytes,
        request: Request,
        *,
        redirects: tuple[str, ...] = (),
        elapsed: float = 0.0,
        node: str = "",
        session_moved: bool = False,
    ) -> None:
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body
        self.request = request
        self.redirects = redirects
        self.elapsed = elapsed
        self.node = node
        self.session_moved = session_moved
        self._text: str | None = None
        self._content_type: str | None = None
        self._encoding: str | None = None
        self._bom = 0
        self._selector: parsel.Selector | None = None
        self._base_url: str | None = None
        self._joiner: LinkJoiner | None = None

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.url}>"

    def via(self, node: str, *, session_moved: bool = False) -> Response:
        """This response as it came through ``node`` (a copy).

        Args:
            node: the egress node that fetched it.
            session_moved: the request's session was moved to ``node``
                because its previous node failed.
        """
        return Response(
            self.url,
            self.status,
            self.headers,
            self.body,
            self.request,
            redirects=self.redirects,
            elapsed=self.elapsed,
            node=node,
            session_moved=session_moved,
        )

    @property
    def meta(self) -> dict[str, Any]:
        """The request's ``meta``: the user's own data."""
        return self.request.meta

    # -- content type ------------------------------------------------------

    @property
    def content_type(self) -> str:
        """What the body is, as a MIME type without parameters."""
        if self._content_type is None:
            self._content_type = response_mime(self.headers.get("content-type"), self.body)
        return self._content_type

    # -- text --------------------------------------------------------------

    def _sniff(self) -> str:
        # A BOM, then the Content-Type charset, then <meta charset>, then
        # (nothing declared) UTF-8 if the body is valid UTF-8, else
        # windows-1252: the HTML Standard's order, as browsers in most
        # locales guess.
        body = self.body
        encoding, bom = read_bom(body)
        if encoding is not None and bom is not None:
            self._bom = len(bom)
        else:
            encoding = http_content_type_encoding(self.headers.get("content-type"))
            if encoding is None:
                encoding = html_body_declared_encoding(body) or self._undeclared()
            elif encoding in ("utf-16", "utf-32"):
                encoding += "-be"
        self._encoding = encoding
        return encoding

    def _undeclared(self) -> str:
        body = self.body
        if body.isascii():
            return "utf8"
        try:
            # (The decoding is the text, kept: the selector and text use it.)
            self._text = body.decode("utf-8")
        except UnicodeDecodeError:
            if self.content_type.endswith(("/json", "+json")):
                return "utf8"  # JSON is UTF-8 (RFC 8259), whatever its bytes
            return "cp1252"
        return "utf8"

    @property
    def text(self) -> str:
        """The body decoded with the detected charset (never raises)."""
        if self._text is None:
            encoding = self.encoding  # (finds the BOM too; may decode the text)
            text = self._text
            if text is None:
                body = self.body[self._bom :]
                if encoding == "cp1252":
                    text = body.decode("cp1252", "crawlmesh_windows_1252")
                else:
                    # Bytes that are not valid in the charset become U+FFFD.
                    text = to_unicode(body, encoding)
                self._text = text
            return text
        return self._text

    @property
    def encoding(self) -> str:
        """The charset :attr:`text` was decoded with."""
        return self._encoding or self._sniff()

    def json(self) -> Any:
        """Decode the body as JSON.

        Raises:
            msgspec.DecodeError: the body is not valid JSON.
        """
        return msgspec.json.decode(self.body)

    # -- selectors ---------------------------------------------------------

    @property
    def selector(self) -> parsel.Selector:
        """A parsel selector over the body, built on first use.

        Raises:
            NotTextResponse: the body is not text, HTML or XML (see
                :attr:`content_type`).
        """
        if self._selector is None:
            if not is_markup(self.content_type):
                raise NotTextResponse(self.url, self.content_type)
            selector = self._utf8_selector()  # (a Selector's truth is its text)
            if selector is None:
                selector = html_selector(self.text, self.url)
            self._selector = selector
        return self._selector

    def _utf8_selector(self) -> parsel.Selector | None:
        """The selector straight from the body, when the body is UTF-8 and
        valid: lxml wants UTF-8 bytes, and decoding them only to encode
        them again costs a fifth of the parse."""
        if self.encoding not in ("utf8", "utf-8") or self._bom:
            return None
        body = self.body
        if not body.isascii():
            text = self._text
            if text is None:
                try:
                    self._text = body.decode("utf-8")  # the text, if valid
                except UnicodeDecodeError:
                    return None  # the text path replaces what is not UTF-8
            elif "\ufffd" in text:
                return None  # (perhaps) replaced bytes: the text path
        return utf8_html_selector(body, self.url)

    def css(self, query: str) -> parsel.SelectorList[parsel.Selector]:
        """``self.selector.css(query)``: parsel's CSS with ``::text``/``::attr()``.

        Raises:
            NotTextResponse: the body is not text, HTML or XML.
        """
        return self.selector.css(query)

    def xpath(self, query: str, **kwargs: Any) -> parsel.SelectorList[parsel.Selector]:
        """``self.selector.xpath(query, **kwargs)``.

        Raises:
            NotTextResponse: the body is not text, HTML or XML.
        """
        return self.selector.xpath(query, **kwargs)

    # -- links -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The base for relative links: ``<base href>`` if present, else
        :attr:`url`. A ``<base href>`` that does not parse, or names a
        ``data:`` or ``javascript:`` URL, is ignored, as browsers do."""
        if self._base_url is None:
            href = None
            # (The bytes are searched when the charset is ASCII's superset.)
            if _BASE_TAG.search(self.body, 0, 4096) is not None or self.encoding.startswith(
                ("utf-16", "utf-32")
            ):
                match = _BASE_HREF.search(self.text, 0, 4096)
                if match is not None:
                    href = html.unescape(next(g for g in match.groups() if g is not None))
            self._base_url = base_url_of(self.url, href, self.encoding)
        return self._base_url

    def urljoin(self, url: str) -> str:
        """Resolve ``url`` against :attr:`base_url` as a browser does (the
        WHATWG URL Standard), the fragment kept; non-ASCII characters of
        the query are encoded in the page's charset.

        Never raises: a malformed link (``http://[::1``) comes back as it is,
        so the engine can report it as an ``invalid_url`` with the URL named,
        and the page's other links still get followed.
        """
        joiner = self._joiner
        if joiner is None:
            joiner = self._joiner = LinkJoiner(self.base_url, self.encoding)
        try:
            return joiner.join(url)  # (which strips what WHATWG strips)
        except ValueError:
            return strip_href(url)

    def follow(self, url: str | parsel.Selector, callback: Any = None, **kwargs: Any) -> Request:
        """A :class:`Request` for a link on this page.

        Args:
            url: a URL (relative ones are resolved), an ``<a>``/``<link>``
                selector (its ``href`` is used) or an attribute selector.
            callback: as in :class:`Request`.
            **kwargs: other :class:`Request` fields.

        Raises:
            ValueError: a selector without an ``href``.
        """
        return Request(self.urljoin(_href(url)), callback=callback, **kwargs)

    def follow_all(
        self,
        urls: Iterable[str | parsel.Selector] | None = None,
        callback: Any = None,
        *,
        css: str | None = None,
        xpath: str | None = None,
        **kwargs: Any,
    ) -> Iterator[Request]:
        """Requests for many links: given ``urls``, or the ``href`` of every
        element matched by ``css`` or ``xpath`` (none when the body is not
        text, HTML or XML: an image or a zip has no links).
        """
        if urls is None:
            if (css is not None or xpath is not None) and not is_markup(self.content_type):
                return
            if css is not None:
                urls = self.css(css)
            elif xpath is not None:
                urls = self.xpath(xpath)
            else:
                raise ValueError("follow_all() needs urls, css or xpath")
        for u in urls:
            try:
                href = _href(u)
            except ValueError:
                continue
            yield Request(self.urljoin(href), callback=callback, **kwargs)


def _href(url: str | parsel.Selector) -> str:
    if isinstance(url, str):
        return url
    root = url.root
    if isinstance(root, str):  # the result of ::attr(href) or ::text
        return root
    href = url.attrib.get("href")
    if href is None:
        raise ValueError(f"a selector without href: {url!r}")
    return str(href)
