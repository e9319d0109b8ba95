"""Where a page's CPU goes: each step of the crawl benchmark measured alone.

    python bench/bench_stages.py [--pages 20000] [--sample 2000]

On the bench site (bench/run.py's generator, served by its nginx), per page:

* fetch     one request through crawlmesh's transport (DirectTransport over
            its HTTP/1.1 pool, keep-alive), one at a time, body read
* decode    the body to text (charset detection included)
* parse     the HTML into a tree (crawlmesh's selector)
* extract   the three ``css(...).get()`` of an item page
* links     ``css("a::attr(href)").getall()``
* follow    ``response.follow(href)`` for each link (join + Request)
* admit     the engine's admission of those requests (URL checks,
            canonical form, fingerprint, dupe filter), in crawl order

Each is CPU time (``time.process_time``) over ``--sample`` pages divided by
the pages. Then one whole crawl (the CLI, as bench/run.py runs it) gives the
CPU per page of everything together; what the steps do not account for is the
engine (stages, channels, tasks), the balancer, shaping and export.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import CRAWLMESH_BIN, ROOT, Nginx, compile_sources, ensure_site
from crawlmesh import DirectTransport, FetchOptions, Request, Response
from crawlmesh._frontier import Admission, FingerprintSet


def _cpu_per_page(step, pages: int) -> float:  # type: ignore[no-untyped-def]
    start = time.process_time()
    step()
    return (time.process_time() - start) * 1e6 / pages


async def _fetch_all(urls: list[str]) -> list[Response]:
    transport = DirectTransport()
    options = FetchOptions(max_response_size=10 * 1024 * 1024)
    try:
        return [await transport.fetch(Request(url), options) for url in urls]
    finally:
        await transport.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=20000, help="site size (20000)")
    parser.add_argument("--sample", type=int, default=2000, help="pages per step (2000)")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    site, manifest = ensure_site(args.pages, 1)
    compile_sources()
    nginx = Nginx(site)
    port = nginx.start()
    try:
        base = f"http://127.0.0.1:{port}"
        paths = sorted(str(p.relative_to(site)) for p in site.rglob("*.html") if "item-" in p.name)[
            : args.sample
        ]
        urls = [f"{base}/{p}" for p in paths]
        n = len(urls)
        results: dict[str, float] = {}
        responses: list[Response] = []

        def fetch() -> None:
            responses.extend(trio.run(_fetch_all, urls))

        results["fetch"] = _cpu_per_page(fetch, n)

        # Fresh Response objects for each step, so nothing is cached between them.
        def fresh() -> list[Response]:
            return [Response(r.url, r.status, r.headers, r.body, r.request) for r in responses]

        pages = fresh()
        results["decode"] = _cpu_per_page(lambda: [p.text for p in pages], n)
        results["parse"] = _cpu_per_page(lambda: [p.selector for p in pages], n)

        def extract() -> None:
            for p in pages:
                p.css("h1.title::text").get()
                p.css("p.price::text").get()
                p.css("span.sku::text").get()

        results["extract"] = _cpu_per_page(extract, n)
        hrefs: list[list[str]] = []
        results["links"] = _cpu_per_page(
            lambda: hrefs.extend(p.css("a::attr(href)").getall() for p in pages), n
        )
        requests: list[list[Request]] = []
        results["follow"] = _cpu_per_page(
            lambda: requests.extend(
                [p.follow(h) for h in hs] for p, hs in zip(pages, hrefs, strict=True)
            ),
            n,
        )
        admission = Admission(FingerprintSet(), filtered=Counter(), on_invalid=lambda *a: None)
        results["admit"] = _cpu_per_page(
            lambda: [
                admission.admit(r, p.request)
                for p, rs in zip(pages, requests, strict=True)
                for r in rs
            ],
            n,
        )
        links = sum(len(h) for h in hrefs) / n
        steps = sum(results.values())

        out = ROOT / "bench" / ".work" / "stages.jsonl"
        start_url = f"{base}{manifest.get('start_path', '/index.html')}"
        cmd = [
            str(CRAWLMESH_BIN), "crawl", "bench.crawlmesh_spider", "-a", f"start_url={start_url}",
            "-o", str(out), "-s", f"concurrency={args.concurrency}",
            "-s", f"concurrency_per_domain={args.concurrency}", "-s", "robots.obey=false",
            "--log-level", "error", "-q",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        if status != 0:
            raise SystemExit(f"the crawl failed with status {status}")
        crawled = manifest["expected_requests"]
        crawl = (usage.ru_utime + usage.ru_stime) * 1e6 / crawled
    finally:
        nginx.stop()

    print(f"{n} item pages, {links:.1f} links each; CPU µs per page:")
    for name, value in results.items():
        print(f"  {name:<8} {value:8.1f}  {value / crawl:6.1%}")
    print(f"  {'steps':<8} {steps:8.1f}  {steps / crawl:6.1%}")
    rest = crawl - steps
    print(f"  {'rest':<8} {rest:8.1f}  {rest / crawl:6.1%}  (engine, balancer, shaping, export)")
    print(f"  {'crawl':<8} {crawl:8.1f}  (the CLI crawl of {crawled} pages, start-up included)")


if __name__ == "__main__":
    main()
