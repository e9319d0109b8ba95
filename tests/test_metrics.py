"""``crawlmesh crawl --metrics``: Prometheus exposition scraped during a real
crawl and read with prometheus-client's own parser."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


def test_metrics_during_a_crawl(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str], slow_site_url: str
) -> None:
    err = cli_project / "stderr.txt"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(crawlmesh_cli), "crawl", "spiders.follow", "-a", f"start_url={slow_site_url}/p/0",
             "-o", "items.jsonl", "-s", "concurrency=4", "--metrics", "127.0.0.1:0"],
            cwd=cli_project, env=cli_env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            url = None
            while url is None and time.monotonic() < deadline:
                found = re.search(r"url=(http://127\.0\.0\.1:\d+/metrics)", err.read_text())
                url = found[1] if found else None
                time.sleep(0.05)
            assert url is not None, err.read_text()
            time.sleep(1.0)
            first = scrape(url)
            time.sleep(1.0)
            second = scrape(url)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    assert 0 < first["crawlmesh_pages_total{}"] < second["crawlmesh_pages_total{}"]
    assert second["crawlmesh_responses_total{status=200}"] > 0
    assert second["crawlmesh_items_total{}"] > 0
    assert "crawlmesh_frontier_requests{}" in second
    assert 0 <= second["crawlmesh_in_flight_requests{}"] <= 4
    # The mesh: the one direct node, up, its breaker closed.
    ok = "crawlmesh_mesh_requests_total{domain=127.0.0.1,node=direct,status_class=2xx}"
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
