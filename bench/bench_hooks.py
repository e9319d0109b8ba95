"""What pipelines and hooks cost: nothing when none are configured, and how
much a no-op one adds per page.

    python bench/bench_hooks.py [--pages 20000] [--rounds 3] [--hooks 5]

1. Per call: a no-op pipeline (sync and async), fetch hook (``on_request`` +
   ``on_response``) and parse hook (``on_output``) through crawlmesh's own
   runners, in µs.
2. Whole crawls of the bench site (bench/run.py's generator, its nginx), the
   CLI as bench/run.py runs it, alternating: no hooks; ``--hooks`` no-op
   pipelines, fetch hooks and parse hooks each. CPU µs per page of the
   crawler process, and the difference per page per hook.

For "nothing when none are configured", compare the first column with the
same command on a tree from before the hooks (``PYTHONPATH=<tree>/src``),
or count instructions with callgrind (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.noop_hooks import AsyncPipeline, FetchHook, ParseHook, Pipeline
from bench.run import CRAWLMESH_BIN, ROOT, Nginx, compile_sources, ensure_site
from crawlmesh import Headers, Request, Response
from crawlmesh._hooks import Events, FetchHooks, ParseHooks, Pipelines

CALLS = 200_000


async def _per_call() -> dict[str, float]:
    request = Request("http://127.0.0.1/p/1")
    response = Response(request.url, 200, Headers(), b"", request)
    item = {"title": "x"}
    out: dict[str, float] = {}

    def pipes(kind: type) -> Pipelines:
        return Pipelines([kind()], dropped=Counter(), errors=Counter(), events=Events(), fail=print)

    async def timed(name: str, call: object) -> None:
        started = time.process_time()
        for _ in range(CALLS):
            await call()  # type: ignore[operator]
        out[name] = (time.process_time() - started) * 1e6 / CALLS

    sync, async_ = pipes(Pipeline), pipes(AsyncPipeline)
    fetch = FetchHooks([FetchHook()])
    parse = ParseHooks([ParseHook()])
    await timed("pipeline (sync)", lambda: sync.process(item, request, "d", None))
    await timed("pipeline (async)", lambda: async_.process(item, request, "d", None))

    async def both() -> None:
        await fetch.before(request, "direct")
        await fetch.after(request, response)

    await timed("fetch hook", both)
    page = [item, request] * 15  # a page's outputs: 30, items and links
    await timed("parse hook (a page)", lambda: parse.output(response, page))
    return out


def _crawl(base: str, start_path: str, settings: Path | None, concurrency: int) -> float:
    out = ROOT / "bench" / ".work" / "hooks.jsonl"
    cmd = [
        str(CRAWLMESH_BIN), "crawl", "bench.crawlmesh_spider",
        "-a", f"start_url={base}{start_path}", "-o", str(out),
        "-s", f"concurrency={concurrency}", "-s", f"concurrency_per_domain={concurrency}",
        "-s", "robots.obey=false", "--log-level", "error", "-q",
    ]  # fmt: skip
    if settings is not None:
        cmd += ["--settings", str(settings)]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"the crawl failed with status {status}")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hooks", type=int, default=5, help="no-op hooks of each kind")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    print("per call, µs:")
    for name, value in trio.run(_per_call).items():
        print(f"  {name:<18} {value:6.2f}")

    compile_sources()
    site, manifest = ensure_site(args.pages, 1)
    settings = ROOT / "bench" / ".work" / "hooks.toml"
    settings.parent.mkdir(parents=True, exist_ok=True)
    n = args.hooks
    settings.write_text(
        f"pipelines = {json.dumps(['bench.noop_hooks:Pipeline'] * n)}\n"
        f"fetch_hooks = {json.dumps(['bench.noop_hooks:FetchHook'] * n)}\n"
        f"parse_hooks = {json.dumps(['bench.noop_hooks:ParseHook'] * n)}\n"
    )
    nginx = Nginx(site)
    port = nginx.start()
    pages = manifest["expected_requests"]
    none: list[float] = []
    hooked: list[float] = []
    try:
        base = f"http://127.0.0.1:{port}"
        start = manifest.get("start_path", "/index.html")
        for _ in range(args.rounds):
            none.append(_crawl(base, start, None, args.concurrency) * 1e6 / pages)
            hooked.append(_crawl(base, start, settings, args.concurrency) * 1e6 / pages)
    finally:
        nginx.stop()
    a, b = statistics.median(none), statistics.median(hooked)
    print(f"whole crawls of {pages} pages, CPU µs per page (median of {args.rounds}):")
    print(f"  no hooks                      {a:8.1f}   ({', '.join(f'{x:.1f}' for x in none)})")
    print(f"  {n} no-op hooks of each kind    {b:8.1f}   ({', '.join(f'{x:.1f}' for x in hooked)})")
    print(f"  per page per hook             {(b - a) / (3 * n):8.2f}")


if __name__ == "__main__":
    main()
