"""Selectors with parsel's API and less of its per-page cost.

parsel creates a new lxml parser for every document, and wraps every query
result (each ``href`` of ``a::attr(href)``) in a :class:`parsel.Selector`
built through its full, validating ``__init__``; for a 20 KiB page with 20
links that is more CPU than the parse and the queries together. Here the
parser is kept (one per thread: lxml parsers are not thread-safe), compiled
XPath expressions are cached, and results of an HTML query are wrapped
directly. What a result holds (root, type, namespaces, expression) is what
parsel would have given it, so every parsel method works on it unchanged;
anything off the common path (custom namespaces, XPath variables, XML or
text selectors) goes through parsel itself.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import parsel
from lxml import etree
from lxml import html as lxml_html

__all__ = ["Selector", "html_selector", "utf8_html_selector"]

# parsel's default namespaces hold two EXSLT prefixes; a query naming neither
# is compiled without them, as parsel does.
_EXSLT_PREFIXES = ("re:", "set:")
_MAX_COMPILED = 1024
_compiled: dict[str, etree.XPath] = {}
_css_to_xpath: dict[str, tuple[str, str]] = {}  # query: (evaluated, parsel's)
_local = threading.local()
# cssselect writes a class or substring test as "@class and contains(@class,
# 'price') and ...": with a non-empty literal the first test is implied
# (contains() of a missing attribute's empty string is false), and libxml2
# spends a third of such a query's time on it.
_IMPLIED_ATTRIBUTE_TEST = re.compile(r"@([\w:.-]+) and contains\(@\1, (?='[^']|\"[^\"])")


def _parser() -> lxml_html.HTMLParser:
    parser: lxml_html.HTMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        # parsel's settings for HTML: recover from any markup, no size cap.
        parser = _local.parser = lxml_html.HTMLParser(
            recover=True, encoding="utf-8", huge_tree=True
        )
    return parser


def _parse(text: str, base_url: str | None) -> Any:
    """The root element of ``text`` exactly as parsel's text path builds it."""
    return _parse_utf8(text.strip().replace("\x00", "").encode("utf-8"), base_url)


# Bytes that end a str.strip() but not a bytes.strip(): the separators
# U+001C..U+001F (non-ASCII whitespace starts with a byte >= 0x80).
_STRIP_DIFFERS = frozenset(range(0x1C, 0x20))


def _utf8_document(body: bytes) -> bytes | None:
    """``body`` as :func:`_parse` would hand it to lxml, if that can be had
    without decoding: ``body`` is valid UTF-8 without a BOM, and whatever
    starts and ends it after a bytes strip would end a str strip as well.
    None when only the text path gives the same document."""
    data = body.strip()
    if data and (
        data[0] >= 0x80
        or data[-1] >= 0x80
        or data[0] in _STRIP_DIFFERS
        or data[-1] in _STRIP_DIFFERS
    ):
        return None
    return data.replace(b"\x00", b"")


def _parse_utf8(body: bytes, base_url: str | None) -> Any:
    body = body or b"<html/>"
    parser = _parser()
    root = etree.fromstring(body, parser=parser, base_url=base_url)
    if root is None:  # only comments or whitespace
        root = etree.fromstring(b"<html/>", parser=parser, base_url=base_url)
    return root


def _evaluator(query: str) -> etree.XPath:
    evaluator = _compiled.get(query)
    if evaluator is None:
        if len(_compiled) >= _MAX_COMPILED:
            _compiled.clear()
        evaluator = _compiled[query] = etree.XPath(query, smart_strings=False)
    return evaluator


class Selector(parsel.Selector):
    """A :class:`parsel.Selector` whose HTML queries take a shorter path.

    Results are instances of this class too, so chained queries
    (``response.css("div.card").css("a::attr(href)")``) stay on it.
    """

    __slots__ = ()

    def css(self, query: str) -> parsel.SelectorList[Selector]:
        if self.type != "html":
            return super().css(query)
        cached = _css_to_xpath.get(query)
        if cached is None:
            if len(_css_to_xpath) >= _MAX_COMPILED:
                _css_to_xpath.clear()
            xpath = self._css2xpath(query)
            lean = _IMPLIED_ATTRIBUTE_TEST.sub(r"contains(@\1, ", xpath)
            cached = _css_to_xpath[query] = (lean, xpath)
        return self._select(*cached)

    def xpath(
        self, query: str, namespaces: Any = None, **kwargs: Any
    ) -> parsel.SelectorList[Selector]:
        if namespaces is not None or kwargs:
            return super().xpath(query, namespaces, **kwargs)
        return self._select(query, query)

    def _select(self, query: str, expr: str) -> parsel.SelectorList[Selector]:
        """Evaluate ``query``; results record ``expr`` (the XPath parsel
        would have evaluated) as their expression."""
        root = self.root
        if (
            self.type != "html"
            or not isinstance(root, etree._Element)
            or self.namespaces != self._default_namespaces
            or any(prefix in query for prefix in _EXSLT_PREFIXES)
        ):
            return super().xpath(expr)
        try:
            result = _evaluator(query)(root)
        except etree.XPathError as exc:
            raise ValueError(f"XPath error: {exc} in {query}") from None
        if not isinstance(result, list):
            result = [result]
        cls = type(self)
        huge_tree = self._huge_tree
        defaults = self._default_namespaces
        wrapped = []
        for value in result:
            selector = cls.__new__(cls)
            selector.root = value
            selector.type = "html"
            selector.namespaces = dict(defaults)
            selector._expr = expr
            selector._huge_tree = huge_tree
            selector._text = None
            wrapped.append(selector)
        return self.selectorlist_cls(wrapped)  # type: ignore[return-value]

    def get(self) -> Any:
        root = self.root
        # A string result (``::text``, ``::attr()``): parsel returns it as
        # it is, after a failed attempt to serialise it as a node.
        if type(root) is str:
            return root
        return super().get()


def html_selector(text: str, base_url: str | None = None) -> Selector:
    """A :class:`Selector` over the HTML document ``text``."""
    return Selector(root=_parse(text, base_url), type="html")


def utf8_html_selector(body: bytes, base_url: str | None = None) -> Selector | None:
    """``html_selector(body.decode("utf-8"), base_url)`` without the decoding
    and re-encoding, for a ``body`` known to be valid UTF-8 without a BOM;
    None if its first or last bytes need the text path."""
    data = _utf8_document(body)
    if data is None:
        return None
    return Selector(root=_parse_utf8(data, base_url), type="html")
