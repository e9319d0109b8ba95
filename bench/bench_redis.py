"""Distributed crawling on one Redis: throughput with 1, 2 and 4 workers,
Redis round trips per page, and the bytes each backend spends per seen URL.

    python bench/bench_redis.py [--pages 20000] [--workers 1,2,4] [--urls 1000000]

Crawls the bench site (bench/run.py's generator and nginx) with N
``crawlmesh crawl --backend redis://`` processes on a fresh redis-server
(persistence off), plus one in-memory run for comparison. Per run: wall time
until every worker exited, pages served (nginx's access log), distinct items
(each must appear once across the workers' files), the workers' CPU, and the
round trips per page each worker logs at its end.

Bytes per URL are measured by adding ``--urls`` fingerprints to each store:
the in-memory FingerprintSet (its table), the SQLite job directory (the
file), Redis's exact set and Redis's Bloom filter (``used_memory`` before and
after).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import trio

from bench.run import CRAWLMESH_BIN, ROOT, WORK, Nginx, check_items, ensure_site, free_port
from crawlmesh import Spider
from crawlmesh._frontier import FingerprintSet
from crawlmesh._observe import StatsCollector
from crawlmesh._state import JobDir
from crawlmesh._state._redis._bloom import BloomPositions
from crawlmesh._util._url import fingerprint

REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"


class Redis:
    """A throwaway redis-server, persistence off."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        self.port = free_port()
        self.proc = subprocess.Popen(
            [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while self.cli("PING") != "PONG":
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True
        )
        return out.stdout.strip()

    def used_memory(self) -> int:
        for line in self.cli("INFO", "memory").splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":")[1])
        raise RuntimeError("no used_memory in INFO")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def cpu_of(rusage: os.struct_rusage) -> float:
    return rusage.ru_utime + rusage.ru_stime


def crawl(
    workers: int, redis: Redis | None, nginx: Nginx, start_url: str, concurrency: int
) -> dict[str, float]:
    runs = WORK / "redis-runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    if redis is not None:
        redis.cli("FLUSHALL")
    access_before, _ = nginx.log_offsets()
    procs = []
    started = time.perf_counter()
    for n in range(workers):
        cmd = [
            str(CRAWLMESH_BIN), "crawl", "bench.crawlmesh_spider",
            "-a", f"start_url={start_url}",
            "-o", str(runs / f"items-{n}.jsonl"),
            "-s", f"concurrency={concurrency}",
            "-s", f"concurrency_per_domain={concurrency}",
            "-s", "robots.obey=false",
            "--log-format", "json", "-q",
        ]  # fmt: skip
        if redis is not None:
            cmd += ["--backend", redis.url]
        stderr = open(runs / f"stderr-{n}.txt", "wb")  # noqa: SIM115 (closed below)
        procs.append(
            (subprocess.Popen(cmd, cwd=ROOT, stderr=stderr, stdout=subprocess.DEVNULL), stderr)
        )
    cpu = 0.0
    for proc, stderr in procs:
        _, status, rusage = os.wait4(proc.pid, 0)
        stderr.close()
        cpu += cpu_of(rusage)
        if status != 0:
            raise RuntimeError(f"a worker failed: see {stderr.name}")
    wall = time.perf_counter() - started
    pages = len(Nginx.lines_since(nginx.access_log, access_before))
    lines = unique = 0
    for n in range(workers):
        n_lines, n_unique, _ = check_items(runs / f"items-{n}.jsonl")
        lines += n_lines
        unique += n_unique
    trips = []
    for n in range(workers):
        for line in (runs / f"stderr-{n}.txt").read_text().splitlines():
            if '"redis round trips"' in line:
                trips.append(json.loads(line)["per_page"])
    return {
        "workers": workers,
        "wall_s": wall,
        "pages": pages,
        "pages_per_s": pages / wall,
        "items": lines,
        "duplicates": lines - unique,
        "cpu_ms_per_page": 1000 * cpu / pages,
        "round_trips_per_page": sum(trips) / len(trips) if trips else 0.0,
    }


def bytes_per_url(urls: int) -> dict[str, float]:

    fps = [fingerprint("GET", f"https://example.com/item/{n}") for n in range(urls)]
    out: dict[str, float] = {}
    memory = FingerprintSet()
    for fp in fps:
        memory.add(fp)
    out["memory (FingerprintSet)"] = memory.nbytes / urls
    with tempfile.TemporaryDirectory() as tmp:

        class S(Spider):
            name = "s"

        job = JobDir(Path(tmp) / "job", S())
        for fp in fps:
            job.add(fp)
        job.close(StatsCollector(), None)
        size = sum(f.stat().st_size for f in (Path(tmp) / "job").iterdir())
        out["--jobdir (SQLite)"] = size / urls
    redis = Redis()
    try:
        out["redis exact set"] = trio.run(_redis_set, redis, fps) / urls
        bloom = BloomPositions(urls)
        out["redis bloom (at capacity)"] = trio.run(_redis_bloom, redis, fps, bloom) / urls
    finally:
        redis.stop()
    return out


async def _redis_set(redis: Redis, fps: list[bytes]) -> int:
    import coredis

    before = redis.used_memory()
    async with coredis.Redis(port=redis.port, decode_responses=False) as client:
        for i in range(0, len(fps), 10_000):
            await client.sadd("crawlmesh:{b}:seen", fps[i : i + 10_000])
    return redis.used_memory() - before


async def _redis_bloom(redis: Redis, fps: list[bytes], bloom: BloomPositions) -> int:
    import coredis

    redis.cli("FLUSHALL")
    before = redis.used_memory()
    async with coredis.Redis(port=redis.port, decode_responses=False) as client:
        # The filter's bitmap reaches its full size with its highest bit set.
        await client.setbit("crawlmesh:{b}:bloom", bloom.bits - 1, 1)
    return redis.used_memory() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--urls", type=int, default=1_000_000)
    parser.add_argument("--skip-crawl", action="store_true")
    args = parser.parse_args()

    print(f"bytes per seen URL ({args.urls:,} URLs):")
    for name, value in bytes_per_url(args.urls).items():
        print(f"  {name:28} {value:6.1f}")
    if args.skip_crawl:
        return

    site, manifest = ensure_site(args.pages, 1)
    nginx = Nginx(site)
    port = nginx.start()
    redis = Redis()
    try:
        start_url = f"http://127.0.0.1:{port}{manifest.get('start_path', '/index.html')}"
        print(f"\n{args.pages:,}-page site, concurrency {args.concurrency} per worker")
        print("backend   workers  pages/s  CPU ms/page  round trips/page  items (dupes)")
        rows = [("memory", crawl(1, None, nginx, start_url, args.concurrency))]
        for n in (int(x) for x in args.workers.split(",")):
            rows.append(("redis", crawl(n, redis, nginx, start_url, args.concurrency)))
        for backend, r in rows:
            print(
                f"{backend:9} {r['workers']:>7.0f} {r['pages_per_s']:>8.0f} "
                f"{r['cpu_ms_per_page']:>12.2f} {r['round_trips_per_page']:>17.3f}  "
                f"{r['items']:.0f} ({r['duplicates']:.0f})"
            )
    finally:
        redis.stop()
        nginx.stop()


if __name__ == "__main__":
    main()
