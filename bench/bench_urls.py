"""The per-link cost of URL resolution: crawlmesh's joiner vs ada alone.

    python bench/bench_urls.py [--pages 5000] [--sample 2000] [--repeat 5]

Over the hrefs of ``--sample`` item pages of the bench site (bench/run.py's
generator; no server needed), CPU µs per link, best of ``--repeat``:

* joiner     LinkJoiner.join (the fast paths, ada for the rest)
* ada        ada's join_url for every link (ada as the whole join path)
* urljoin    the standard library's urljoin (not WHATWG: for scale)
* follow     Response.follow (strip, join, Request)
* admit      Admission.admit of those requests (WHATWG form, checks,
             canonical form, fingerprint, dupe filter), in crawl order
* fast       the share of links the joiner's fast paths answered
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ada_url import join_url

import crawlmesh._util._url as url_module
from bench.run import ensure_site
from crawlmesh import Headers, Request, Response
from crawlmesh._frontier import Admission, FingerprintSet
from crawlmesh._util._url import LinkJoiner

_HREF = re.compile(r'href="([^"]*)"')


def _best(step: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        step()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=5000, help="site size (5000)")
    parser.add_argument("--sample", type=int, default=2000, help="item pages (2000)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    site, _ = ensure_site(args.pages, 1)
    files = sorted(p for p in site.rglob("*.html") if "item-" in p.name)[: args.sample]
    base = "http://127.0.0.1:8080/"
    pages = []
    for f in files:
        body = f.read_bytes()
        url = base + str(f.relative_to(site))
        pages.append((url, body, _HREF.findall(body.decode())))
    links = sum(len(h) for _, _, h in pages)
    html = Headers([("Content-Type", "text/html; charset=utf-8")])
    results: dict[str, float] = {}

    def joiner() -> None:
        for url, _, hrefs in pages:
            join = LinkJoiner(url).join
            for h in hrefs:
                join(h)

    results["joiner"] = _best(joiner, args.repeat)
    results["ada"] = _best(
        lambda: [join_url(url, h) for url, _, hrefs in pages for h in hrefs], args.repeat
    )
    results["urljoin"] = _best(
        lambda: [urljoin(url, h) for url, _, hrefs in pages for h in hrefs], args.repeat
    )
    requests: list[list[Request]] = []

    def follow() -> None:
        requests.clear()
        for url, body, hrefs in pages:
            page = Response(url, 200, html, body, Request(url))
            requests.append([page.follow(h) for h in hrefs])

    results["follow"] = _best(follow, args.repeat)

    def admit() -> None:
        admission = Admission(FingerprintSet(), filtered=Counter(), on_invalid=lambda *a: None)
        for (url, _, _), rs in zip(pages, requests, strict=True):
            parent = Request(url)
            for r in rs:
                admission.admit(r, parent)

    results["admit"] = _best(admit, args.repeat)

    slow = 0
    ada_join = url_module.join_url

    def counting(base: str, href: str) -> str:
        nonlocal slow
        slow += 1
        return ada_join(base, href)

    url_module.join_url = counting
    try:
        joiner()
    finally:
        url_module.join_url = ada_join

    print(f"{len(pages)} item pages, {links} links; CPU µs per link (best of {args.repeat}):")
    for name, seconds in results.items():
        print(f"  {name:<8} {seconds * 1e6 / links:6.2f}")
    print(f"  fast     {1 - slow / links:6.1%} of links joined without ada")


if __name__ == "__main__":
    main()
