"""crawlmesh's Selector answers every query as parsel does, on a shorter path."""

from __future__ import annotations

import parsel
import pytest

from crawlmesh._selector import Selector, html_selector

DOC = """
<html><head><title>Shop &amp; more</title><base href="/x/"></head>
<body>
  <h1 class="title main">Widget</h1>
  <p class="price">£1.50</p><p class="price old">£2.00</p>
  <div class="card"><a href="a.html">A <b>bold</b></a><a href="/b.html" id="b">B</a></div>
  <div class="card"><a href="1">one</a><a>no href</a><span class="sku">SKU-1</span></div>
  <ul><li>x</li><li>y</li></ul>
  <!-- a comment -->
  <p>text with re: inside</p>
  <p class="">empty class</p><span title="x y">t</span><span title="">no title</span>
  <i title="it's">q</i><i class="pricey">not a price</i>
</body></html>
"""

QUERIES_CSS = [
    "h1.title::text",
    "p.price::text",
    "a::attr(href)",
    "a",
    "div.card a::text",
    "span.sku",
    "title::text",
    "li",
    "nothing-here",
    "*::text",
    # Attribute tests cssselect writes as "@a and contains(@a, ...)":
    "p:not(.old)::text",
    "[class*=pri]::text",
    "[class*='']::text",
    "[title*=x]::text",
    '[title*="it\'s"]::text',
    "[title]::text",
    "h1.title.main::text",
    "[class~=price]::text",
    ".price:not([title*=y])::text",
]
QUERIES_XPATH = [
    "//a/@href",
    "count(//a)",
    "boolean(//h1)",
    "string(//h1)",
    "//p[contains(., 're:')]/text()",
    "//li[re:test(., '^[xy]$')]/text()",
    "//comment()",
    "//a[@id='b']",
]


def _same(ours: parsel.SelectorList[parsel.Selector], theirs: parsel.SelectorList) -> None:
    assert ours.getall() == theirs.getall()
    assert [s.type for s in ours] == [s.type for s in theirs]
    assert [s.namespaces for s in ours] == [s.namespaces for s in theirs]
    assert [s._expr for s in ours] == [s._expr for s in theirs]


@pytest.mark.parametrize(
    "doc", [DOC, "", "   ", "<!-- only -->", "<p>unclosed <b>tags", "\x00<p>x</p>"]
)
def test_css_and_xpath_match_parsel(doc: str) -> None:
    ours = html_selector(doc, "http://example.com/")
    theirs = parsel.Selector(text=doc, type="html", base_url="http://example.com/")
    assert ours.get() == theirs.get()
    for query in QUERIES_CSS:
        _same(ours.css(query), theirs.css(query))
    for query in QUERIES_XPATH:
        _same(ours.xpath(query), theirs.xpath(query))


def test_results_chain_on_the_fast_path() -> None:
    ours = html_selector(DOC)
    theirs = parsel.Selector(text=DOC, type="html")
    cards = ours.css("div.card")
    assert all(type(card) is Selector for card in cards)
    _same(cards.css("a::attr(href)"), theirs.css("div.card").css("a::attr(href)"))
    _same(cards[0].xpath(".//b/text()"), theirs.css("div.card")[0].xpath(".//b/text()"))
    assert cards[0].css("a").attrib == theirs.css("div.card")[0].css("a").attrib
    assert ours.css("p.price::text").re(r"[\d.]+") == ["1.50", "2.00"]
    assert ours.css("a::attr(href)")[0].xpath(".").get() == "a.html"


def test_variables_namespaces_and_errors_fall_back_to_parsel() -> None:
    ours = html_selector(DOC)
    theirs = parsel.Selector(text=DOC, type="html")
    _same(ours.xpath("//a[@href=$h]/text()", h="1"), theirs.xpath("//a[@href=$h]/text()", h="1"))
    ours.register_namespace("x", "urn:x")
    theirs.register_namespace("x", "urn:x")
    _same(ours.xpath("//a/@href"), theirs.xpath("//a/@href"))
    with pytest.raises(ValueError, match="XPath error"):
        html_selector(DOC).xpath("//a[")


def test_the_cache_of_compiled_queries_is_bounded() -> None:
    from crawlmesh import _selector

    sel = html_selector(DOC)
    for i in range(_selector._MAX_COMPILED + 10):
        sel.xpath(f"//a[{i + 1}]")
        sel.css(f"a:nth-child({i + 1})")
    assert len(_selector._compiled) <= _selector._MAX_COMPILED
    assert len(_selector._css_to_xpath) <= _selector._MAX_COMPILED


def test_implied_attribute_tests_are_left_out() -> None:
    # "@class and contains(@class, 'price')" is "contains(@class, 'price')":
    # the cheaper form is the one evaluated (the results match parsel's above).
    from crawlmesh._selector import _css_to_xpath

    _css_to_xpath.clear()  # (a cache: room for what this test reads back)
    sel = html_selector(DOC)
    sel.css("p.price")
    sel.css("[class*='']")
    lean, parsels = _css_to_xpath["p.price"]
    assert "@class and" in parsels
    assert "@class and" not in lean
    assert "contains(@class, 'price')" in lean
    assert _css_to_xpath["[class*='']"] == (sel._css2xpath("[class*='']"),) * 2
