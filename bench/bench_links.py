"""The per-link cost of LinkExtractor and of a CrawlSpider rule, against
``response.follow_all(css="a")``.

    python bench/bench_links.py [--page PATH]

Over a real page (the Python documentation's library/stdtypes.html, from
Debian's python3-doc, or ``--page``) and a generated one (400 links of the
shapes sites have: relative, absolute, other hosts, fragments, repeats,
images, mailto:/javascript:), CPU µs per ``<a href>`` of the page, the page
parsed once beforehand (every variant uses the same lxml tree), best of 7:

* follow_all   [r for r in response.follow_all(css="a")]: a Request per link
* extract      LinkExtractor().extract_links(response): Links, filtered
               (extensions, schemes) and deduplicated
* filtered     LinkExtractor(allow=, deny_domains=, restrict_css=)
* rule         a CrawlSpider with one Rule: extract, then a Request per link
* parse        building the tree (for scale: µs per link of the whole parse)
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crawlmesh import CrawlSpider, Headers, LinkExtractor, Request, Response, Rule

DOCS_PAGE = Path("/usr/share/doc/python3/html/library/stdtypes.html")
DOCS_URL = "https://docs.python.org/3/library/stdtypes.html"


def generated_page(links: int = 400, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    shapes = [
        lambda n: f"item/{n}.html",
        lambda n: f"/cat/{n % 20}/page-{n}",
        lambda n: f"../up/{n}.html",
        lambda n: f"https://shop.example.com/p/{n}?ref=list",
        lambda n: f"https://other.example.org/{n}",
        lambda n: f"item/{n % 50}.html#reviews",
        lambda n: f"/img/{n}.jpg",
        lambda n: "mailto:sales@example.com",
        lambda n: "javascript:void(0)",
        lambda n: f"?page={n % 30}",
    ]
    anchors = []
    for n in range(links):
        href = rng.choice(shapes)(rng.randrange(1000))
        anchors.append(f'<li><a class="l" href="{href}">Link <b>{n}</b> text</a></li>')
    half = len(anchors) // 2
    return (
        "<html><head><title>t</title></head><body><nav><ul>"
        + "".join(anchors[:half])
        + "</ul></nav><main><ul>"
        + "".join(anchors[half:])
        + "</ul></main></body></html>"
    ).encode()


def cpu_us(calls: Callable[[int], None], *, repeat: int = 7, budget: float = 0.1) -> float:
    """CPU µs per call of ``calls(k)``, best of ``repeat`` (process time: the
    figure holds on a loaded machine, where wall time does not)."""
    k = 1
    while True:
        start = time.process_time()
        calls(k)
        if time.process_time() - start >= budget:
            break
        k *= 2
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        calls(k)
        best = min(best, time.process_time() - start)
    return best / k * 1e6


def response_for(url: str, body: bytes) -> Response:
    headers = Headers([("Content-Type", "text/html; charset=utf-8")])
    return Response(url, 200, headers, body, Request(url))


class OneRule(CrawlSpider):
    name = "bench"
    rules = (Rule(LinkExtractor(), callback="parse_item"),)

    def parse_item(self, response: Response) -> None:
        return None


def bench(label: str, url: str, body: bytes) -> None:
    response = response_for(url, body)
    anchors = len(response.xpath("//a[@href]"))
    extractor = LinkExtractor()
    host = url.split("/")[2]
    filtered = LinkExtractor(allow=r"/", deny_domains=["other.example.org"], restrict_css="body")
    spider = OneRule()

    def follow_all(k: int) -> None:
        for _ in range(k):
            [r for r in response.follow_all(css="a")]

    def extract(k: int) -> None:
        for _ in range(k):
            extractor.extract_links(response)

    def extract_filtered(k: int) -> None:
        for _ in range(k):
            filtered.extract_links(response)

    def rule(k: int) -> None:
        follow = spider._requests_to_follow
        for _ in range(k):
            list(follow(response))

    def parse(k: int) -> None:
        for _ in range(k):
            response_for(url, body).selector  # noqa: B018 (builds the tree)

    kept = len(extractor.extract_links(response))
    print(f"{label}: {anchors} <a href>, {kept} links kept by LinkExtractor() (host {host})")
    for name, fn in [
        ("follow_all", follow_all),
        ("extract", extract),
        ("filtered", extract_filtered),
        ("rule", rule),
        ("parse", parse),
    ]:
        print(f"  {name:<11} {cpu_us(fn) / anchors:6.2f} µs per link")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--page", type=Path, default=DOCS_PAGE)
    args = parser.parse_args()
    if args.page.is_file():
        bench(f"docs page {args.page.name}", DOCS_URL, args.page.read_bytes())
    else:
        print(f"{args.page} not found (apt-get install python3-doc): docs page skipped")
    bench("generated page", "https://shop.example.com/list/index.html", generated_page())


if __name__ == "__main__":
    main()
