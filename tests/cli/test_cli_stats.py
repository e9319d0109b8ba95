"""``--stats FILE`` of a real crawl: valid against the published schema
(``crawlmesh stats-schema``) and consistent with itself and the crawl.

Three domains (three loopback addresses), a weighted mesh of a proxy, a
node and an API with a dead node among them, pages that fail (404, 500, a
block page, a 429 with Retry-After), as in tests/test_log_secrets.py.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import msgspec
import pytest
import trio

from crawlmesh import CrawlStats, stats_schema
from mesh_world import ENV, open_shops, secret_node, secret_proxy, write_nodes
from node.nodes import NodeProc
from observe.test_stats import sums_match

PAGES = 30  # per domain: with the failing pages, over 100 requests in all


@pytest.fixture(scope="module")
def proxy_with_password() -> Iterator[str]:
    yield from secret_proxy()


@pytest.fixture(scope="module")
def node_with_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProc]:
    yield from secret_node(tmp_path_factory.mktemp("node"))


async def run(
    cli: Path, *args: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(120):
        return await trio.run_process(
            [str(cli), *args],
            cwd=cwd,
            env={**env, **ENV},
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


async def test_stats_file_is_valid_and_consistent(
    crawlmesh_cli: Path,
    cli_project: Path,
    cli_env: dict[str, str],
    proxy_with_password: str,
    node_with_token: NodeProc,
) -> None:
    printed = await run(crawlmesh_cli, "stats-schema", cwd=cli_project, env=cli_env)
    assert printed.returncode == 0, printed.stderr
    schema = json.loads(printed.stdout)
    assert schema == stats_schema()
    jsonschema.Draft202012Validator.check_schema(schema)

    stats_path = cli_project / "stats.json"
    async with open_shops(PAGES) as (shops, api_url):
        nodes = write_nodes(
            cli_project,
            proxy_with_password,
            node_with_token.url,
            api_url,
            weights=(2, 1, 1, 1, 1, 1),
            only={"proxy", "node", "node-dead", "api"},
        )
        result = await run(
            crawlmesh_cli, "crawl", "spiders.follow",
            "-a", f"start_url={next(iter(shops.values())).base}/",
            "--nodes", str(nodes), "-o", str(cli_project / "items.jsonl"),
            "--errors", str(cli_project / "errors.jsonl"), "--stats", str(stats_path),
            "-s", "balancer.strategy=weighted", "-s", "balancer.node_retries=5",
            "-s", "retry.backoff_base=0.05", "-s", "progress_interval=0",
            cwd=cli_project, env=cli_env,
        )  # fmt: skip
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr[-3000:]
    data = json.loads(stats_path.read_text())
    jsonschema.validate(data, schema)
    stats = msgspec.json.decode(stats_path.read_bytes(), type=CrawlStats)
    assert stats.schema_version == 1
    assert stats.finish_reason == "finished"

    # Every total is the sum of its per-domain rows, and the rows are what
    # each domain served: its index, its item pages, /missing, /boom and
    # /pushback as responses; /ban as a failure after three block pages.
    sums_match(stats)
    assert stats.domains_seen == len(shops) == 3
    rows = {row.domain: row for row in stats.domains}
    assert set(rows) == {shop.host for shop in shops.values()}  # no (other), no (none)
    for row in rows.values():
        assert (row.pages, row.items) == (PAGES + 4, PAGES), row
        assert row.errors == {"banned": 1, "http_error": 2}, row
        assert row.status == {"2xx": PAGES + 2, "4xx": 1, "5xx": 1}, row
        assert row.retry_after_pauses == 1
        assert row.retries >= 5  # /boom and /ban twice, /pushback once
        assert 0 < row.mean_ms <= row.p95_ms
    items = (cli_project / "items.jsonl").read_text().splitlines()
    errors = (cli_project / "errors.jsonl").read_text().splitlines()
    assert len(items) == stats.items == 3 * PAGES
    assert len(errors) == stats.errors == sum(stats.errors_by_kind.values())

    # Nodes: shares of one whole, retries and breaker trips add up.
    by_name = {n.name: n for n in stats.nodes}
    assert set(by_name) == {"proxy", "node", "node-dead", "api"}
    assert sum(n.share for n in stats.nodes) == pytest.approx(1.0, abs=0.002)
    assert sum(n.expected_share for n in stats.nodes) == pytest.approx(1.0, abs=0.002)
    assert by_name["proxy"].expected_share == pytest.approx(0.4)
    assert sum(n.retries for n in stats.nodes) == stats.retries
    transitions = stats.breaker_transitions
    assert sum(n.breaker_trips for n in stats.nodes) == transitions.get("node:open", 0)
    assert by_name["node-dead"].breaker_trips >= 1
    pair_trips = sum(n.pair_breaker_trips for n in stats.nodes)
    assert (
        pair_trips
        == transitions.get("pair:open", 0)
        == sum(row.breaker_trips for row in stats.domains)
    )
    assert by_name["node-dead"].errors  # its failures, by kind
    assert by_name["proxy"].endpoint.startswith("http://***:***@127.0.0.1:")

    # The distribution check: judged (over 100 requests, weighted), each
    # node's verdict from its numbers and the tolerance stated.
    d = stats.distribution
    assert d.strategy == "weighted"
    assert d.requests == sum(n.requests for n in stats.nodes) > d.min_requests
    assert d.reason == ""
    for share in d.nodes:
        node = by_name[share.node]
        assert (share.requests, share.share, share.expected_share) == (
            node.requests,
            node.share,
            node.expected_share,
        )
        off = abs(share.share - share.expected_share)
        uneven = off > max(d.tolerance, d.tolerance_relative * share.expected_share)
        assert share.verdict == ("uneven" if uneven else "ok"), share
    assert d.verdict == ("uneven" if any(s.verdict == "uneven" for s in d.nodes) else "ok")

    # The block on stderr shows the same table, compactly.
    block = stderr[stderr.index("crawl finished in") :]
    assert "domains (3):" in block
    for host in rows:
        line = next(line for line in block.splitlines() if line.strip().startswith(host))
        assert line.split()[1:3] == [str(PAGES + 4), str(PAGES)]
    assert f"distribution: {d.verdict}" in block
