"""``crawlmesh crawl --metrics``: Prometheus exposition scraped during a real
crawl and read with prometheus-client's own parser."""

from __future__ import annotations

import itertools
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path

import httpx
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from crawling import Pages, built_engine, no_item
from crawlmesh import (
    SiteRequest,
    SiteResponse,
    open_site_server,
)
from crawlmesh._observe import CrawlCollector, serve_metrics
from sites import GeneratedSite


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return parse(response.read().decode())


def parse(text: str) -> dict[str, float]:
    """Every sample as ``name{label=value,...}`` (labels sorted) -> value."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


def label(key: str, name: str) -> str:
    """A label's value in a key of :func:`parse`."""
    found = re.search(rf"[{{,]{name}=([^,}}]*)", key)
    assert found is not None, (key, name)
    return found[1]


@contextmanager
def crawl_serving_metrics(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str], site_url: str
) -> Iterator[str]:
    """Run ``crawlmesh crawl --metrics 127.0.0.1:0`` on ``site_url`` (4 at a
    time); yield its /metrics URL once it is served, then stop it (SIGINT)."""
    err = cli_project / "stderr.txt"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(crawlmesh_cli), "crawl", "spiders.follow", "-a", f"start_url={site_url}/p/0",
             "-o", "items.jsonl", "-s", "concurrency=4", "--metrics", "127.0.0.1:0"],
            cwd=cli_project, env=cli_env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while True:  # (the line on its stderr says where)
                found = re.search(r"url=(http://127\.0\.0\.1:\d+/metrics)", err.read_text())
                if found is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            assert found is not None, err.read_text()
            url = found[1]
            yield url
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)


PAGES = "crawlmesh_pages_total{}"
DIRECT_OK = "crawlmesh_mesh_requests_total{domain=127.0.0.1,node=direct,status_class=2xx}"


def scrape_until(url: str, ready: Callable[[dict[str, float]], bool]) -> dict[str, float]:
    """The first scrape of ``url`` that is ``ready`` (within 20 s)."""
    deadline = time.monotonic() + 20
    while True:
        metrics = scrape(url)
        if ready(metrics) or time.monotonic() > deadline:
            return metrics
        time.sleep(0.05)


def test_metrics_during_a_crawl(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str], slow_site_url: str
) -> None:
    with crawl_serving_metrics(crawlmesh_cli, cli_project, cli_env, slow_site_url) as url:
        first = scrape_until(url, lambda m: m.get(PAGES, 0) > 0 and m.get(DIRECT_OK, 0) > 0)
        second = scrape_until(
            url,
            lambda m: (
                m.get(PAGES, 0) > first[PAGES]
                and m.get(DIRECT_OK, 0) > first[DIRECT_OK]
                and m.get("crawlmesh_items_total{}", 0) > 0
            ),
        )
    assert 0 < first["crawlmesh_pages_total{}"] < second["crawlmesh_pages_total{}"]
    assert second["crawlmesh_responses_total{status=200}"] > 0
    assert second["crawlmesh_items_total{}"] > 0
    assert "crawlmesh_frontier_requests{}" in second
    assert 0 <= second["crawlmesh_in_flight_requests{}"] <= 4
    # The mesh: the one direct node, up, its breaker closed.
    ok = DIRECT_OK
    assert 0 < first[ok] < second[ok]
    assert second["crawlmesh_mesh_node_state{node=direct,state=up}"] == 1
    assert second["crawlmesh_mesh_breaker_state{node=direct,state=closed}"] == 1
    # Every attempt that ended is in the duration histogram, 20 ms or more each.
    attempts = sum(v for k, v in second.items() if k.startswith("crawlmesh_mesh_requests_total"))
    count = second["crawlmesh_mesh_request_duration_seconds_count{node=direct}"]
    assert count == attempts
    assert second["crawlmesh_mesh_request_duration_seconds_bucket{le=+Inf,node=direct}"] == count
    assert second["crawlmesh_mesh_request_duration_seconds_bucket{le=0.01,node=direct}"] == 0
    assert second["crawlmesh_mesh_request_duration_seconds_sum{node=direct}"] >= 0.02 * count
    # No rate limit here: every reason is exported, none waited.
    for reason in ("delay", "pause", "rate", "node_rate", "shared"):
        assert second[f"crawlmesh_rate_limit_waits_total{{reason={reason}}}"] == 0
    # The retry budget's floor (1 retry/s over 10 s) and 20% of the window's requests.
    requests = second["crawlmesh_retry_budget_window_requests{}"]
    assert requests > 0
    retries = second["crawlmesh_retry_budget_window_retries{}"]
    assert second["crawlmesh_retry_budget_available{}"] == int(0.2 * requests + 10) - retries


def test_a_metrics_address_in_use_is_one_line(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(crawlmesh_cli), "crawl", "spiders.follow", "-a", "start_url=http://127.0.0.1:9/",
             "--metrics", f"127.0.0.1:{port}"],
            cwd=cli_project, env=cli_env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"crawlmesh: error: --metrics 127.0.0.1:{port}:" in done.stderr
    assert "Traceback" not in done.stderr


# -- in process: a crawl of more domains than have labels ----------------------

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
RATE_HOST = "127.0.0.5"
COUNTERS = ("_total", "_bucket", "_count", "_sum")


def follow_all(urls: list[str]) -> Pages:
    """Follows every link from ``urls`` (the start requests pass the dupe
    filter, as a spider's ``start_urls`` do), and yields no item."""
    return Pages(urls, follow=True, item=no_item, dont_filter=True)


async def test_metrics_of_a_crawl_of_more_domains_than_labels(tmp_path: Path) -> None:
    sites = [GeneratedSite(40, seed=n) for n in range(len(HOSTS))]
    settings = {"metrics.domain_labels": 2, "rates": {RATE_HOST: {"rate": "50/s"}}}
    scrapes: list[dict[str, float]] = []
    async with AsyncExitStack() as stack:
        bases = [
            await stack.enter_async_context(open_site_server(site.handle, host=host))
            for site, host in zip(sites, HOSTS, strict=True)
        ]
        spider = follow_all([f"{b}/p/0" for b in bases])
        engine = stack.enter_context(built_engine(spider, tmp_path, settings))
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve_metrics, engine, "127.0.0.1:0")
            url = f"{binds[0]}/metrics"

            async def scrape_while_crawling() -> None:
                while True:
                    scrapes.append(parse((await client.get(url)).text))
                    await trio.sleep(0.05)

            nursery.start_soon(scrape_while_crawling)
            stats = await engine.run()
            final = parse((await client.get(url)).text)  # after the crawl
            nursery.cancel_scope.cancel()
    assert len(scrapes) > 5
    # Counters only grow, and no series goes away: a domain's label, once
    # given, is kept (a counter that shrank would read as a reset).
    for before, after in itertools.pairwise([*scrapes, final]):
        for key, value in before.items():
            if key.split("{")[0].endswith(COUNTERS):
                assert after[key] >= value, key

    requests = {k: v for k, v in final.items() if k.startswith("crawlmesh_mesh_requests_total")}
    domains = {label(key, "domain") for key in requests}
    assert "other" in domains
    assert len(domains - {"other"}) == 2
    assert domains <= {*HOSTS, "other"}
    # Every attempt counted once, by status class and in the histogram.
    (node,) = stats.nodes
    assert sum(requests.values()) == node.requests
    assert final["crawlmesh_mesh_request_duration_seconds_count{node=direct}"] == node.requests
    by_class = Counter[str]()
    for key, value in requests.items():
        by_class[label(key, "status_class")] += value
    assert by_class == {"2xx": stats.status_counts["200"], "4xx": stats.status_counts["404"] + 4}
    buckets = [
        value
        for key, value in final.items()
        if key.startswith("crawlmesh_mesh_request_duration_seconds_bucket")
    ]
    assert len(buckets) == 15
    assert buckets == sorted(buckets)
    assert buckets[-1] == node.requests
    assert final["crawlmesh_mesh_request_duration_seconds_sum{node=direct}"] > 0
    # Only the rate-limited host waited, for its rate: one wait per request
    # at most, each at most one 20 ms interval long.
    fetched = len([hit for hit in sites[-1].hits if hit != "/robots.txt"])
    waits = final["crawlmesh_rate_limit_waits_total{reason=rate}"]
    seconds = final["crawlmesh_rate_limit_wait_seconds_total{reason=rate}"]
    assert 0 < waits < fetched
    assert 0 < seconds <= waits * 0.02 + 1e-6
    assert seconds >= (fetched - 1) * 0.02 * 0.5  # the host mostly had work waiting
    for reason in ("delay", "pause", "node_rate", "shared"):
        assert final[f"crawlmesh_rate_limit_waits_total{{reason={reason}}}"] == 0


async def test_metrics_of_a_domain_whose_breaker_opens(tmp_path: Path) -> None:
    async def broken(request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        return SiteResponse(500, b"down")

    settings = {"robots.obey": False, "retry.max_attempts": 1,
                "concurrency_per_domain": 1, "breaker.park_timeout": 0.5}  # fmt: skip
    async with open_site_server(broken) as base:
        urls = [f"{base}/p/{n}" for n in range(10)]
        with built_engine(follow_all(urls), tmp_path, settings) as engine:
            registry = CollectorRegistry()
            registry.register(CrawlCollector(engine))
            await engine.run()
    final = parse(generate_latest(registry).decode())
    # Five 500s in a row open the (node, domain) breaker; the other five
    # requests wait for it (one hold) and are written off at park_timeout.
    attempts = {k: v for k, v in final.items() if k.startswith("crawlmesh_mesh_requests_total")}
    assert {label(k, "status_class") for k in attempts} == {"5xx"}
    assert sum(attempts.values()) == 5
    assert final["crawlmesh_breaker_transitions_total{scope=pair,state=open}"] == 1
    assert final["crawlmesh_circuit_holds_total{}"] == 1
    assert final["crawlmesh_errors_total{kind=http_error}"] == 5
    assert final["crawlmesh_errors_total{kind=circuit_open}"] == 5
    # A target's failures are not the node's: its own breaker stays closed.
    assert final["crawlmesh_mesh_breaker_state{node=direct,state=closed}"] == 1
    node_errors = {k: v for k, v in final.items() if k.startswith("crawlmesh_mesh_errors_total")}
    assert node_errors
    assert set(node_errors.values()) == {0}
    assert final["crawlmesh_mesh_bans_total{node=direct}"] == 0


async def test_a_node_in_slow_start_has_a_state(tmp_path: Path) -> None:
    nodes = [{"name": "a", "kind": "direct"}, {"name": "b", "kind": "direct"}]
    with built_engine(follow_all([]), tmp_path, {"nodes": nodes}) as engine:
        assert engine.balancer is not None
        b = next(n for n in engine.balancer.nodes if n.name == "b")
        engine.balancer.health.ramp(b)  # (as when its breaker closes again)
        registry = CollectorRegistry()
        registry.register(CrawlCollector(engine))
        final = parse(generate_latest(registry).decode())
    states = {
        (label(k, "node"), label(k, "state"))
        for k, v in final.items()
        if k.startswith("crawlmesh_mesh_node_state") and v == 1
    }
    assert states == {("a", "up"), ("b", "slow-start")}


async def test_counters_of_known_label_sets_start_at_zero(tmp_path: Path) -> None:
    """A series born at its first event has no earlier sample: rate() and
    increase() miss that event and panels show "No data". Breaker
    transitions and each node's error kinds are exported at 0 from the start."""
    nodes = [
        {"name": "d", "kind": "direct"},
        {"name": "n", "kind": "node", "url": "http://127.0.0.1:9"},
    ]
    with built_engine(follow_all([]), tmp_path, {"nodes": nodes}) as engine:
        registry = CollectorRegistry()
        registry.register(CrawlCollector(engine))
        fresh = parse(generate_latest(registry).decode())
    transitions = {
        (label(k, "scope"), label(k, "state")): v
        for k, v in fresh.items()
        if k.startswith("crawlmesh_breaker_transitions_total")
    }
    assert transitions == {
        (scope, state): 0 for scope in ("node", "pair") for state in ("closed", "half-open", "open")
    }
    errors = {
        (label(k, "node"), label(k, "kind")): v
        for k, v in fresh.items()
        if k.startswith("crawlmesh_mesh_errors_total")
    }
    attempt_kinds = {"connect_error", "connect_timeout", "connection_error", "read_timeout",
                     "total_timeout"}  # fmt: skip
    node_kinds = {"node_draining", "node_error", "node_overloaded", "node_rate_limited"}
    assert {kind for node, kind in errors if node == "d"} == attempt_kinds
    assert {kind for node, kind in errors if node == "n"} == attempt_kinds | node_kinds
    assert set(errors.values()) == {0}
