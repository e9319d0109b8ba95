"""Crawl benchmark runner: crawlmesh against Scrapy on a local nginx-served site.

    python bench/run.py [--pages 20000] [--runs 3] [--concurrency 64]
                        [--only crawlmesh|scrapy] [--json FILE] [--timeout 600]

Steps: generate the site if it is not cached (bench/.work/site-N), create the Scrapy
venv if missing (bench/.venv-scrapy), byte-compile both crawlers' own code (as an
install would), start nginx on a free 127.0.0.1 port, then
alternate runs (crawlmesh, scrapy, crawlmesh, scrapy, ...), each a child process.

Per run it measures:
  wall     time from spawning the child until os.wait4 reaps it (includes start-up)
  pages    lines the nginx access log gained during the run (requests served, 404s too)
  items    lines in the run's JSON-lines output
  cpu      ru_utime + ru_stime of the child from os.wait4
  rss      ru_maxrss of the child from os.wait4 (KiB on Linux), shown in MiB
and checks items against the manifest's item pages (and pages against the requests a
correct crawl makes). nginx is stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work"
SCRAPY_VENV = BENCH / ".venv-scrapy"
CRAWLMESH_BIN = ROOT / ".venv" / "bin" / "crawlmesh"
NGINX_BIN = shutil.which("nginx") or "/usr/sbin/nginx"
CRAWLERS = ("crawlmesh", "scrapy")
# Not run by default: crawlmesh without its balancer stage, to measure the stage,
# and crawlmesh with no shaping or resilience (no rate rule, AIMD, breakers or
# retries), to measure those.
EXTRA_CRAWLERS = ("crawlmesh-nobalancer", "crawlmesh-noshaping")
# crawlmesh runs with a rate rule for every domain, high enough never to bind,
# so the GCRA path runs for every request (the "shaping on").
UNLIMITED_RATES = '{"*": {"rate": "1000000/s", "burst": 1000}}'


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    bar = "!" * 78
    log(f"\n{bar}\n!!! {msg}\n{bar}\n")


# --------------------------------------------------------------------------- setup


def ensure_site(pages: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """Return (site dir, manifest), generating the site if it is not cached."""
    name = f"site-{pages}" if seed == 1 else f"site-{pages}-s{seed}"
    site = WORK / name
    manifest_path = site / "manifest.json"
    if manifest_path.exists():
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        if manifest.get("pages") == pages and manifest.get("seed") == seed:
            return site, manifest
    log(f"generating a {pages}-page site in {site} ...")
    subprocess.run(
        [
            sys.executable,
            str(BENCH / "gen_site.py"),
            "--pages",
            str(pages),
            "--seed",
            str(seed),
            "--out",
            str(site),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return site, json.loads(manifest_path.read_text())


def ensure_scrapy_venv() -> Path:
    scrapy = SCRAPY_VENV / "bin" / "scrapy"
    if not scrapy.exists():
        log(f"creating the Scrapy venv in {SCRAPY_VENV} ...")
        subprocess.run(["python3", "-m", "venv", str(SCRAPY_VENV)], check=True)
        subprocess.run(
            [str(SCRAPY_VENV / "bin" / "pip"), "install", "--quiet", "scrapy"], check=True
        )
    return scrapy


def warm_page_cache(site: Path) -> None:
    """Read every file once so that no run pays for cold disk reads."""
    for path in site.rglob("*.html"):
        path.read_bytes()


def command_output(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (proc.stdout + proc.stderr).strip()


def compile_sources() -> None:
    """Byte-compile both crawlers' own code, as installing a package does.

    crawlmesh runs from an editable install and both spiders from bench/:
    with PYTHONDONTWRITEBYTECODE set (as on this machine) every run would
    compile them from source again (~80 ms of crawlmesh's start-up), which a
    user's ``pip install`` never does. Scrapy's site-packages are compiled
    when its venv is made.
    """
    jobs = [(ROOT / ".venv" / "bin" / "python", [ROOT / "src" / "crawlmesh", BENCH])]
    if SCRAPY_VENV.exists():
        jobs.append((SCRAPY_VENV / "bin" / "python", [BENCH / "scrapy_spider.py"]))
    for python, paths in jobs:
        subprocess.run(
            [str(python), "-m", "compileall", "-q", *map(str, paths)],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def environment_info() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
        mem = f"{kib / 1024 / 1024:.1f} GiB"
    crawlmesh_py = ROOT / ".venv" / "bin" / "python"
    return {
        "cpus": str(os.cpu_count()),
        "cpu_model": model,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": command_output([NGINX_BIN, "-v"]).removeprefix("nginx version: "),
        "scrapy": command_output([str(SCRAPY_VENV / "bin" / "scrapy"), "version"]),
        "crawlmesh": command_output(
            [
                str(crawlmesh_py),
                "-c",
                "import importlib.metadata as m; print(m.version('crawlmesh'))",
            ]
        ),
        "crawlmesh_git": command_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT),
    }


# --------------------------------------------------------------------------- nginx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Nginx:
    """nginx in the foreground (daemon off) as a child process, all files in .work/."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self.dir = WORK / "nginx"
        self.access_log = self.dir / "access.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> int:
        for _ in range(5):
            self.port = free_port()
            if self._try_start():
                return self.port
        raise RuntimeError(f"nginx did not start, see {self.dir / 'error.log'}")

    def _try_start(self) -> bool:
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        conf = (
            (BENCH / "nginx.conf")
            .read_text()
            .replace("@WORK@", str(self.dir))
            .replace("@ROOT@", str(self.site))
            .replace("@PORT@", str(self.port))
        )
        conf_path = self.dir / "nginx.conf"
        conf_path.write_text(conf)
        self.access_log.unlink(missing_ok=True)
        self.error_log.unlink(missing_ok=True)
        with open(self.dir / "nginx.out", "wb") as out:
            self.proc = subprocess.Popen(
                [
                    NGINX_BIN,
                    "-p",
                    str(self.dir),
                    "-e",
                    str(self.dir / "error.log"),
                    "-c",
                    str(conf_path),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/index.html")
                status = conn.getresponse().status
                conn.close()
            except OSError:
                time.sleep(0.05)
                continue
            if status != 200:
                raise RuntimeError(f"nginx answered {status} for /index.html")
            return True
        self.stop()
        return False

    @property
    def error_log(self) -> Path:
        return self.dir / "error.log"

    def log_offsets(self) -> tuple[int, int]:
        """Current sizes of (access log, error log)."""
        time.sleep(0.2)  # let the worker finish writing the last lines
        size = self.error_log.stat().st_size if self.error_log.exists() else 0
        return self.access_log.stat().st_size, size

    @staticmethod
    def lines_since(path: Path, offset: int) -> list[str]:
        if not path.exists():
            return []
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace").splitlines()

    def cpu_seconds(self) -> float:
        """CPU time (user + sys) used so far by the nginx master and its workers."""
        if self.proc is None:
            return 0.0
        master = self.proc.pid
        total_ticks = 0
        for stat_path in Path("/proc").glob("[0-9]*/stat"):
            try:
                stat = stat_path.read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            pid, ppid = int(stat_path.parent.name), int(fields[1])
            if pid == master or ppid == master:
                total_ticks += int(fields[11]) + int(fields[12])  # utime + stime
        return total_ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGQUIT)  # graceful shutdown
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.proc = None


# --------------------------------------------------------------------------- runs


@dataclass
class RunResult:
    crawler: str
    run: int
    exit_code: int
    timed_out: bool
    wall_s: float
    pages: int
    status_counts: dict[str, int]
    items: int
    unique_skus: int
    incomplete_items: int
    cpu_user_s: float
    cpu_sys_s: float
    peak_rss_mib: float
    nginx_cpu_s: float
    problems: list[str] = field(default_factory=list)

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_sys_s

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_ms_per_page(self) -> float:
        return 1000 * self.cpu_s / self.pages if self.pages else float("nan")

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            cpu_s=round(self.cpu_s, 3),
            pages_per_s=round(self.pages_per_s, 1),
            cpu_ms_per_page=round(self.cpu_ms_per_page, 3),
            ok=self.ok,
        )
        return data


def crawler_command(crawler: str, start_url: str, out: Path, concurrency: int) -> list[str]:
    if crawler == "crawlmesh-nobalancer":
        python = CRAWLMESH_BIN.parent / "python"
        return [str(python), str(BENCH / "bare_crawl.py"), start_url, str(out), str(concurrency)]
    if crawler in ("crawlmesh", "crawlmesh-noshaping"):
        if crawler == "crawlmesh":
            shaping = ["-s", f"rates={UNLIMITED_RATES}"]
        else:
            shaping = [
                "-s", "throttle.enabled=false", "-s", "breaker.enabled=false",
                "-s", "retry.max_attempts=1",
            ]  # fmt: skip
        return [
            str(CRAWLMESH_BIN), "crawl", "bench.crawlmesh_spider",
            "-a", f"start_url={start_url}",
            "-o", str(out),
            "-s", f"concurrency={concurrency}",
            "-s", f"concurrency_per_domain={concurrency}",
            "-s", "robots.obey=false",
            *shaping,
            "--log-level", "warning",
        ]  # fmt: skip
    return [
        str(SCRAPY_VENV / "bin" / "scrapy"), "runspider", str(BENCH / "scrapy_spider.py"),
        "-a", f"start_url={start_url}",
        "-O", str(out),
        "-s", f"CONCURRENT_REQUESTS={concurrency}",
        "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={concurrency}",
        "-s", "LOG_LEVEL=WARNING",  # also quiets the start-up lines
    ]  # fmt: skip


def check_items(out: Path) -> tuple[int, int, int]:
    """Return (lines, distinct skus, items missing a field) of a JSON-lines output."""
    if not out.exists():
        return 0, 0, 0
    lines = 0
    skus: set[str] = set()
    incomplete = 0
    with open(out, "rb") as f:
        for raw in f:
            if not raw.strip():
                continue
            lines += 1
            try:
                item = json.loads(raw)
            except ValueError:
                incomplete += 1
                continue
            if not all(isinstance(item.get(k), str) and item[k] for k in ("title", "price", "sku")):
                incomplete += 1
            if isinstance(item.get("sku"), str):
                skus.add(item["sku"])
    return lines, len(skus), incomplete


def run_once(
    crawler: str,
    number: int,
    nginx: Nginx,
    manifest: dict[str, Any],
    concurrency: int,
    timeout: float,
) -> RunResult:
    runs_dir = WORK / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    out = runs_dir / f"{crawler}-{number}.jsonl"
    out.unlink(missing_ok=True)
    start_url = f"http://127.0.0.1:{nginx.port}{manifest.get('start_path', '/index.html')}"
    cmd = crawler_command(crawler, start_url, out, concurrency)
    access_offset, error_offset = nginx.log_offsets()
    nginx_cpu_before = nginx.cpu_seconds()
    timed_out = threading.Event()

    with (
        open(runs_dir / f"{crawler}-{number}.stdout", "wb") as stdout,
        open(runs_dir / f"{crawler}-{number}.stderr", "wb") as stderr,
    ):
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            start_new_session=True,
        )  # fmt: skip

        def on_timeout() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, on_timeout)
        timer.start()
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.wait4(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        # Kill anything the child left behind in its session (normally nothing).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    time.sleep(0.2)  # let the worker finish writing the last lines
    nginx_cpu = nginx.cpu_seconds() - nginx_cpu_before
    lines = nginx.lines_since(nginx.access_log, access_offset)
    server_errors = [
        line
        for line in nginx.lines_since(nginx.error_log, error_offset)
        if any(f"[{level}]" in line for level in ("error", "crit", "alert", "emerg"))
    ]
    statuses = Counter(line.split(" ", 1)[0] for line in lines)
    items, unique, incomplete = check_items(out)
    result = RunResult(
        crawler=crawler,
        run=number,
        exit_code=proc.returncode,
        timed_out=timed_out.is_set(),
        wall_s=round(wall, 3),
        pages=len(lines),
        status_counts=dict(sorted(statuses.items())),
        items=items,
        unique_skus=unique,
        incomplete_items=incomplete,
        cpu_user_s=round(rusage.ru_utime, 3),
        cpu_sys_s=round(rusage.ru_stime, 3),
        peak_rss_mib=round(rusage.ru_maxrss / 1024, 1),
        nginx_cpu_s=round(nginx_cpu, 2),
    )
    expected_items = manifest["item_pages"]
    expected_requests = manifest["expected_requests"]
    if result.timed_out:
        result.problems.append(f"timed out after {timeout:.0f} s")
    if result.exit_code != 0:
        result.problems.append(f"exit code {result.exit_code}")
    if items != expected_items:
        result.problems.append(f"items {items} != {expected_items} item pages")
    if unique != items:
        result.problems.append(f"{items - unique} duplicate items")
    if incomplete:
        result.problems.append(f"{incomplete} items missing title/price/sku")
    if result.pages != expected_requests:
        result.problems.append(f"requests served {result.pages} != {expected_requests} expected")
    if server_errors:
        result.problems.append(f"{len(server_errors)} nginx errors, e.g. {server_errors[0]}")
    if result.problems:
        warn(f"{crawler} run {number} is NOT correct: " + "; ".join(result.problems))
        tail = (runs_dir / f"{crawler}-{number}.stderr").read_text(errors="replace")[-2000:]
        if tail.strip():
            log(f"--- last lines of {crawler}-{number}.stderr ---\n{tail}\n---")
    return result


# --------------------------------------------------------------------------- reporting

HEADER = (
    f"{'crawler':<10} {'run':>3} {'wall s':>8} {'pages':>7} {'404':>4} {'items':>7} "
    f"{'pages/s':>8} {'CPU s':>7} {'CPU ms/pg':>9} {'RSS MiB':>8} {'nginx CPU s':>11}  status"
)


def row(r: RunResult) -> str:
    return (
        f"{r.crawler:<10} {r.run:>3} {r.wall_s:>8.2f} {r.pages:>7} "
        f"{r.status_counts.get('404', 0):>4} {r.items:>7} {r.pages_per_s:>8.1f} "
        f"{r.cpu_s:>7.2f} {r.cpu_ms_per_page:>9.3f} {r.peak_rss_mib:>8.1f} {r.nginx_cpu_s:>11.2f}  "
        + ("ok" if r.ok else "FAILED: " + "; ".join(r.problems))
    )


def summarize(results: list[RunResult]) -> dict[str, dict[str, float]]:
    """Medians per crawler over the runs that exited cleanly (correct or not)."""
    summary: dict[str, dict[str, float]] = {}
    for crawler in (*CRAWLERS, *EXTRA_CRAWLERS):
        runs = [r for r in results if r.crawler == crawler and r.exit_code == 0 and r.pages]
        if not runs:
            continue
        summary[crawler] = {
            "runs": len(runs),
            "correct_runs": sum(r.ok for r in runs),
            "wall_s": statistics.median(r.wall_s for r in runs),
            "pages_per_s": statistics.median(r.pages_per_s for r in runs),
            "cpu_ms_per_page": statistics.median(r.cpu_ms_per_page for r in runs),
            "peak_rss_mib": statistics.median(r.peak_rss_mib for r in runs),
        }
    return summary


def print_report(results: list[RunResult], summary: dict[str, dict[str, float]]) -> None:
    print("\nRuns:")
    print(HEADER)
    for r in results:
        print(row(r))
    print("\nSummary (medians):")
    print(f"{'crawler':<10} {'runs':>4} {'ok':>3} {'wall s':>8} {'pages/s':>9} "
          f"{'CPU ms/page':>12} {'peak RSS MiB':>13}")  # fmt: skip
    for crawler, s in summary.items():
        print(
            f"{crawler:<10} {s['runs']:>4.0f} {s['correct_runs']:>3.0f} {s['wall_s']:>8.2f} "
            f"{s['pages_per_s']:>9.1f} {s['cpu_ms_per_page']:>12.3f} {s['peak_rss_mib']:>13.1f}"
        )
    ratios = ratios_of(summary)
    if ratios:
        print("\ncrawlmesh / Scrapy:")
        print(f"  pages/s ratio      {ratios['pages_per_s']:.2f}x  (> 1: crawlmesh is faster)")
        print(f"  CPU-per-page ratio {ratios['cpu_ms_per_page']:.2f}x  (< 1: crawlmesh is cheaper)")
        print(f"  peak RSS ratio     {ratios['peak_rss_mib']:.2f}x  (< 1: crawlmesh is smaller)")
    if any(not r.ok for r in results):
        warn("some runs were NOT correct (see the status column above)")


def ratios_of(summary: dict[str, dict[str, float]]) -> dict[str, float]:
    if "crawlmesh" not in summary or "scrapy" not in summary:
        return {}
    cm, sc = summary["crawlmesh"], summary["scrapy"]
    keys = ("pages_per_s", "cpu_ms_per_page", "peak_rss_mib")
    return {k: round(cm[k] / sc[k], 3) for k in keys if sc[k]}


# --------------------------------------------------------------------------- main


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="crawlmesh vs Scrapy crawl benchmark")
    parser.add_argument("--pages", type=int, default=20_000, help="site size (20000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per crawler (3)")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent requests (64)")
    parser.add_argument(
        "--only",
        help="comma-separated crawlers to run: crawlmesh, scrapy, crawlmesh-nobalancer",
    )
    parser.add_argument("--json", type=Path, help="save the results to this file")
    parser.add_argument("--timeout", type=float, default=600, help="per-run limit, s (600)")
    parser.add_argument("--seed", type=int, default=1, help="site generator seed (1)")
    args = parser.parse_args(argv)

    # Ctrl-C (even if the shell started us with SIGINT ignored) and SIGTERM both stop the
    # current run and nginx.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    crawlers = args.only.split(",") if args.only else list(CRAWLERS)
    unknown = set(crawlers) - set(CRAWLERS) - set(EXTRA_CRAWLERS)
    if unknown:
        parser.error(f"unknown crawlers: {', '.join(sorted(unknown))}")
    WORK.mkdir(parents=True, exist_ok=True)
    site, manifest = ensure_site(args.pages, args.seed)
    if "scrapy" in crawlers:
        ensure_scrapy_venv()
    if "crawlmesh" in crawlers and not CRAWLMESH_BIN.exists():
        raise SystemExit(f"{CRAWLMESH_BIN} not found: install crawlmesh into /work/main/.venv")
    compile_sources()
    env = environment_info()
    log(
        f"site: {site} ({manifest['pages']} pages, {manifest['item_pages']} item pages, "
        f"{manifest['broken_urls']} broken URLs, {manifest['expected_requests']} requests "
        f"expected, ~{manifest['avg_page_bytes'] / 1024:.1f} KiB/page)"
    )
    warm_page_cache(site)

    nginx = Nginx(site)
    results: list[RunResult] = []
    try:
        port = nginx.start()
        log(f"nginx {env['nginx']} serving {site} on 127.0.0.1:{port}")
        log(HEADER)
        for number in range(1, args.runs + 1):
            for crawler in crawlers:
                result = run_once(crawler, number, nginx, manifest, args.concurrency, args.timeout)
                results.append(result)
                log(row(result))
                time.sleep(1)
    except KeyboardInterrupt:
        log("interrupted: stopping")
        return 130
    finally:
        nginx.stop()

    summary = summarize(results)
    print_report(results, summary)
    if args.json:
        payload = {
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "environment": env,
            "manifest": manifest,
            "runs": [r.to_json() for r in results],
            "summary": summary,
            "ratios_crawlmesh_over_scrapy": ratios_of(summary),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        log(f"results saved to {args.json}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
