"""The node protocol end to end: GET and POST /scrape, sessions, /health,
/metrics, the crawl side's error mapping, and a crawl through three nodes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from crawling import Pages, run_spider
from crawlmesh import (
    BlockedAddress,
    FetchOptions,
    FetchTimeout,
    NodeSpec,
    NodeTransport,
    Request,
)
from crawlmesh._transport import NodeFault
from node.nodes import NodeProc, TargetSite, node_process, wait_in_flight, write_token

OPTS = FetchOptions(read_timeout=5.0, max_response_size=1024 * 1024)


async def test_get_scrape_for_the_simple_case(
    node: NodeProc, client: httpx.AsyncClient, target_url: str
) -> None:
    r = await client.get(f"{node.url}/scrape", params={"url": f"{target_url}/"}, headers=node.auth)
    assert r.status_code == 200
    result = r.json()
    assert result["status"] == 200
    assert result["node"] == "n1"
    assert "hello" in result["body"]
    assert result["body_encoding"] == "utf-8"
    assert result["elapsed"] > 0
    assert r.headers["x-node"] == "n1"
    missing = await client.get(f"{node.url}/scrape", headers=node.auth)
    assert missing.status_code == 400


async def test_binary_bodies_come_back_as_base64(node: NodeProc, target_url: str) -> None:
    t = NodeTransport(node.url, token=node.token)
    try:
        r = await t.fetch(Request(f"{target_url}/bin"), OPTS)
    finally:
        await t.aclose()
    assert r.body == bytes(range(256))
    assert r.headers.get("content-type") == "image/png"


async def test_sessions_keep_their_own_cookies(
    node: NodeProc, client: httpx.AsyncClient, target_url: str
) -> None:
    async def get(path: str, **fields: Any) -> str:
        r = await client.post(
            f"{node.url}/scrape", json={"url": f"{target_url}{path}", **fields}, headers=node.auth
        )
        assert r.status_code == 200
        return str(r.json()["body"])

    await get("/set-cookie?v=one", session_id="s1")
    await get("/set-cookie?v=two", session_id="s2")
    assert await get("/cookie", session_id="s1") == "v=one"
    assert await get("/cookie", session_id="s2") == "v=two"
    # No session, no jar: one client's cookies never reach another's requests.
    await get("/set-cookie?v=three")
    assert await get("/cookie") == ""
    # X-Session-ID selects the session too.
    r = await client.get(
        f"{node.url}/scrape",
        params={"url": f"{target_url}/cookie"},
        headers={**node.auth, "X-Session-ID": "s1"},
    )
    assert r.json()["body"] == "v=one"
    # A reset starts the session afresh.
    assert await get("/cookie", session_id="s1", reset_session=True) == ""


async def test_sessions_are_bounded_in_count_and_expire_when_idle(
    tmp_path: Path, client: httpx.AsyncClient, target_url: str
) -> None:
    config = tmp_path / "node.toml"
    config.write_text("allow_private = true\nmax_sessions = 2\nsession_idle = 0.5\n")
    with node_process(tmp_path, "--config", str(config)) as n:

        async def get(path: str, session: str) -> str:
            r = await client.post(
                f"{n.url}/scrape", json={"url": f"{target_url}{path}", "session_id": session},
                headers=n.auth,
            )  # fmt: skip
            return str(r.json()["body"])

        for s in ("a", "b", "c"):
            await get(f"/set-cookie?v={s}", s)
        assert await get("/cookie", "c") == "v=c"
        assert await get("/cookie", "a") == ""  # the least recently used went first
        metrics = (await client.get(f"{n.url}/metrics", headers=n.auth)).text
        assert "crawlmesh_node_sessions 2.0" in metrics
        await get("/set-cookie?v=b2", "b")
        await trio.sleep(0.7)
        assert await get("/cookie", "b") == ""  # idle past session_idle


async def test_health_reports_the_node(node: NodeProc, client: httpx.AsyncClient) -> None:
    h = (await client.get(f"{node.url}/health")).json()
    assert h["status"] == "healthy"
    assert h["name"] == "n1"
    assert h["version"]
    assert h["uptime"] > 0
    assert 10_000_000 < h["memory"] < 1_000_000_000
    assert h["cpu_usage"] >= 0
    assert (h["queue_size"], h["in_flight"]) == (0, 0)


async def test_metrics_parse_as_prometheus_exposition(
    node: NodeProc, client: httpx.AsyncClient, target_url: str
) -> None:
    await client.post(f"{node.url}/scrape", json={"url": f"{target_url}/"}, headers=node.auth)
    await client.post(
        f"{node.url}/scrape", json={"url": f"{target_url}/status?code=503"}, headers=node.auth
    )
    await client.post(f"{node.url}/scrape", json={"url": "ftp://x/"}, headers=node.auth)
    text = (await client.get(f"{node.url}/metrics", headers=node.auth)).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "requests", "errors", "request_duration_seconds", "in_flight", "queue_size",
        "target_responses", "suspicious", "sessions",
    ):  # fmt: skip
        assert f"crawlmesh_node_{name}" in families, name
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values()
               for s in f.samples}  # fmt: skip
    assert samples[("crawlmesh_node_requests_total", (("code", "ok"),))] >= 2
    assert samples[("crawlmesh_node_errors_total", (("code", "invalid_request"),))] >= 1
    assert samples[("crawlmesh_node_target_responses_total", (("status_class", "5xx"),))] >= 1
    assert families["crawlmesh_node_request_duration_seconds"].type == "histogram"


# -- the crawl side -------------------------------------------------------------


async def test_the_node_transport_tells_node_faults_from_target_failures(
    tmp_path: Path, node: NodeProc, target_url: str
) -> None:
    t = NodeTransport(node.url, token=node.token)
    try:
        # The target's 503 is a response: the (node, domain) pair's business.
        r = await t.fetch(Request(f"{target_url}/status?code=503"), OPTS)
        assert r.status == 503
        # A refused address is the target's failure, not the node's.
        with pytest.raises(BlockedAddress) as blocked:
            await t.fetch(Request("http://169.254.169.254/"), OPTS)
        assert not getattr(blocked.value, "node_fault", False)
        # A target that does not answer in time: a target timeout.
        with pytest.raises(FetchTimeout) as slow:
            await t.fetch(Request(f"{target_url}/hang"), FetchOptions(read_timeout=0.5))
        assert slow.value.kind == "read_timeout"
        assert not getattr(slow.value, "node_fault", False)
    finally:
        await t.aclose()
    wrong = NodeTransport(node.url, token="not-the-token-at-all")
    try:
        with pytest.raises(NodeFault) as unauthorized:
            await wrong.fetch(Request(f"{target_url}/"), OPTS)
        assert unauthorized.value.kind == "node_unauthorized"
    finally:
        await wrong.aclose()


async def test_an_overloaded_node_is_a_node_fault(
    tmp_path: Path, client: httpx.AsyncClient, target_url: str
) -> None:
    with node_process(tmp_path, "--allow-private", "--concurrency", "1", "--max-queue", "0") as n:
        t = NodeTransport(n.url, token=n.token)
        kinds: list[str] = []
        try:

            async def one() -> None:
                try:
                    await t.fetch(Request(f"{target_url}/slow?s=0.5"), OPTS)
                    kinds.append("ok")
                except NodeFault as exc:
                    kinds.append(exc.kind)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(one)
                await wait_in_flight(client, n, 1)  # its slot taken for 0.5 s
                nursery.start_soon(one)
        finally:
            await t.aclose()
        assert sorted(kinds) == ["node_overloaded", "ok"]


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                node_process(tmp_path_factory.mktemp(name), "--allow-private", name=name)
            )
            for name in ("eu1", "eu2", "us1")
        ]


async def test_a_crawl_through_three_nodes(
    tmp_path: Path, three_nodes: list[NodeProc], target_url: str, target: TargetSite
) -> None:
    specs = []
    for n, region in zip(three_nodes, ("eu", "eu", "us"), strict=True):
        token_file, _ = write_token(tmp_path, n.token)
        name = n.proc.args[n.proc.args.index("--name") + 1]  # type: ignore[union-attr]
        specs.append(
            NodeSpec(name=name, kind="node", url=n.url, region=region, token_file=str(token_file))
        )
    stats, items, errors = await run_spider(
        Pages([f"{target_url}/p/0"], dont_filter=True, follow=True),
        tmp_path,
        nodes=specs,
        **{"robots.obey": False},
    )
    assert errors == []
    assert sorted(int(i["url"].rsplit("/", 1)[1]) for i in items) == list(range(60))
    by_node = {n.name: n.requests for n in stats.nodes}
    assert set(by_node) == {"eu1", "eu2", "us1"}
    assert sum(by_node.values()) == 60
    assert all(count >= 5 for count in by_node.values()), by_node
    assert {i["node"] for i in items} == {"eu1", "eu2", "us1"}


def test_a_nodes_file_with_an_unreadable_token_file_is_a_clear_error(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.toml"
    nodes.write_text(
        '[[nodes]]\nname = "n1"\nkind = "node"\nurl = "http://127.0.0.1:1"\n'
        f'token_file = "{tmp_path / "missing"}"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "crawlmesh", "nodes", "check", "--nodes", str(nodes)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "token_file" in proc.stderr
    assert "missing" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "needs --token-file"),
        (["--no-auth", "--host", "0.0.0.0"], "loopback"),
        (["--token-file", "{short}"], "at least 16 characters"),
        (["--token-file", "{missing}"], "cannot read"),
        (["--no-auth", "--allow-net", "10.0.0.0/33"], "allow_networks"),
        (["--no-auth", "--config", "{badkey}"], "unknown field"),
        (["--no-auth", "--concurrency", "0"], "concurrency"),
    ],
)
def test_a_node_with_broken_settings_does_not_start(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    short = tmp_path / "short"
    short.write_text("abc\n")
    badkey = tmp_path / "bad.toml"
    badkey.write_text("no_such_key = 1\n")
    paths = {"short": short, "missing": tmp_path / "missing", "badkey": badkey}
    argv = [a.format(**paths) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "crawlmesh", "node", "--port", "0", *argv],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_taken_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "crawlmesh", "node", "--no-auth", "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr
