"""Every security rule of the node service: a request that must be refused,
and one that must pass."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from node.nodes import NodeProc, TargetSite, node_process


def scrape(url: str, **fields: Any) -> dict[str, Any]:
    return {"url": url, **fields}


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


# -- auth ---------------------------------------------------------------------


async def test_scrape_needs_the_bearer_token(
    node: NodeProc, client: httpx.AsyncClient, target_url: str
) -> None:
    body = scrape(f"{target_url}/")
    missing = await client.post(f"{node.url}/scrape", json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = await client.post(
        f"{node.url}/scrape", json=body, headers={"Authorization": f"Bearer {node.token}x"}
    )
    assert wrong.status_code == 401
    basic = await client.post(
        f"{node.url}/scrape", json=body, headers={"Authorization": f"Basic {node.token}"}
    )
    assert basic.status_code == 401
    ok = await client.post(f"{node.url}/scrape", json=body, headers=node.auth)
    assert ok.status_code == 200
    assert ok.json()["status"] == 200


async def test_metrics_need_the_token_and_health_does_not(
    node: NodeProc, client: httpx.AsyncClient
) -> None:
    assert (await client.get(f"{node.url}/metrics")).status_code == 401
    health = await client.get(f"{node.url}/health")
    assert health.status_code == 200
    assert health.json()["status"] == "healthy"
    metrics = await client.get(f"{node.url}/metrics", headers=node.auth)
    assert metrics.status_code == 200
    # Failed auth is suspicious: counted (this test's and the one before's).
    assert metric(metrics.text, "crawlmesh_node_suspicious_total", reason="auth") >= 1


async def test_failed_auth_is_logged_without_the_token(
    node: NodeProc, client: httpx.AsyncClient
) -> None:
    await client.get(f"{node.url}/metrics", headers={"Authorization": "Bearer guess-guess-guess"})
    # /health after, so the warning has been written by the time we read.
    await client.get(f"{node.url}/health")
    log = node.log.read_text()
    assert "auth failed" in log
    assert "guess-guess-guess" not in log
    assert node.token not in log


# -- SSRF guard ---------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_node(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A node with the default guard: no private addresses at all."""
    with node_process(tmp_path_factory.mktemp("strict"), name="strict") as n:
        yield n


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("localhost", "loopback"),  # refused after DNS resolution
        ("127.0.0.1", "loopback"),
        ("[::1]", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("[fd00:ec2::254]", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("100.64.0.1", "reserved"),  # shared address space (carrier NAT)
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("[::ffff:127.0.0.1]", "loopback"),  # IPv4-mapped IPv6
        ("[64:ff9b::a00:1]", "private"),  # NAT64 of 10.0.0.1
        ("[2002:a00:1::]", "private"),  # 6to4 of 10.0.0.1
    ],
)
async def test_the_guard_refuses_non_public_targets(
    strict_node: NodeProc, client: httpx.AsyncClient, target_url: str, host: str, why: str
) -> None:
    port = target_url.rsplit(":", 1)[1]
    r = await client.post(
        f"{strict_node.url}/scrape", json=scrape(f"http://{host}:{port}/"), headers=strict_node.auth
    )
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "blocked_address"
    assert why in error["message"]


async def test_the_guard_counts_blocked_addresses(
    strict_node: NodeProc, client: httpx.AsyncClient
) -> None:
    await client.post(
        f"{strict_node.url}/scrape", json=scrape("http://10.9.9.9/"), headers=strict_node.auth
    )
    text = (await client.get(f"{strict_node.url}/metrics", headers=strict_node.auth)).text
    assert metric(text, "crawlmesh_node_suspicious_total", reason="blocked_address") >= 1
    assert metric(text, "crawlmesh_node_errors_total", code="blocked_address") >= 1


async def test_allow_private_still_refuses_cloud_metadata(
    node: NodeProc, client: httpx.AsyncClient, target_url: str
) -> None:
    allowed = await client.post(
        f"{node.url}/scrape", json=scrape(f"{target_url}/"), headers=node.auth
    )
    assert allowed.status_code == 200
    r = await client.post(
        f"{node.url}/scrape", json=scrape("http://169.254.169.254/latest/"), headers=node.auth
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "blocked_address"


@pytest.fixture(scope="module")
def one_host_node(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A node allowed only 127.0.0.1/32: other loopback addresses stay refused."""
    with node_process(
        tmp_path_factory.mktemp("onehost"), "--allow-net", "127.0.0.1/32", name="onehost"
    ) as n:
        yield n


async def test_every_redirect_hop_is_checked(
    one_host_node: NodeProc, client: httpx.AsyncClient, target_url: str, target: TargetSite
) -> None:
    port = target_url.rsplit(":", 1)[1]
    n = one_host_node
    # A hop to an allowed address passes ...
    ok = await client.post(
        f"{n.url}/scrape",
        json=scrape(f"{target_url}/redirect?to=http://127.0.0.1:{port}/echo"),
        headers=n.auth,
    )
    assert ok.status_code == 200
    assert ok.json()["redirects"] == [f"{target_url}/redirect?to=http://127.0.0.1:{port}/echo"]
    # ... a hop to a refused one (127.0.0.2 is loopback, outside the range) does not,
    # though the first URL was allowed; the target is never contacted there.
    hits = target.hits
    refused = await client.post(
        f"{n.url}/scrape",
        json=scrape(f"{target_url}/redirect?to=http://127.0.0.2:{port}/echo"),
        headers=n.auth,
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "blocked_address"
    assert "127.0.0.2" in refused.json()["error"]["message"]
    assert target.hits == hits + 1  # the redirect only
    metadata = await client.post(
        f"{n.url}/scrape",
        json=scrape(f"{target_url}/redirect?to=http://169.254.169.254/"),
        headers=n.auth,
    )
    assert metadata.json()["error"]["code"] == "blocked_address"


async def test_a_host_is_connected_only_at_an_allowed_address(
    one_host_node: NodeProc, client: httpx.AsyncClient, target_url: str
) -> None:
    # "localhost" may resolve to ::1 as well as 127.0.0.1: only the allowed
    # address is tried, and the target (listening on 127.0.0.1) answers.
    port = target_url.rsplit(":", 1)[1]
    r = await client.post(
        f"{one_host_node.url}/scrape",
        json=scrape(f"http://localhost:{port}/"),
        headers=one_host_node.auth,
    )
    assert r.status_code == 200, r.text


# -- validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"url": "ftp://127.0.0.1/x"}, "scheme"),
        ({"url": "file:///etc/passwd"}, "scheme"),
        ({"url": "javascript:alert(1)"}, "scheme"),
        ({"url": "http:///nohost"}, "host"),
        ({"url": "http://127.0.0.1/" + "a" * 9000}, "characters long"),
        ({"url": "http://127.0.0.1/a b"}, "whitespace"),
        ({"headers": {"Host": "internal.example"}}, "set by the node"),
        ({"headers": {"Transfer-Encoding": "chunked"}}, "set by the node"),
        ({"headers": {"Connection": "close"}}, "set by the node"),
        ({"headers": {"Proxy-Authorization": "x"}}, "set by the node"),
        ({"headers": {"X-Forwarded-For": "1.2.3.4"}}, "set by the node"),
        ({"headers": {"Warning": "199"}}, "allow-list"),
        ({"headers": {"X-A": "b\r\nHost: evil"}}, "CR, LF"),
        ({"headers": {"Bad Name": "x"}}, "token"),
        ({"method": "TRACE"}, "method"),
        ({"body": "not base64!"}, "base64"),
        ({"body": base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()}, "body is"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": 1000}, "timeout"),
        ({"session_id": "x" * 300}, "session_id"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
async def test_invalid_requests_are_refused_with_a_clear_error(
    node: NodeProc,
    client: httpx.AsyncClient,
    target_url: str,
    target: TargetSite,
    fields: dict[str, Any],
    needle: str,
) -> None:
    body = {"url": f"{target_url}/echo", **fields}
    r = await client.post(f"{node.url}/scrape", json=body, headers=node.auth)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert needle in error["message"]
    assert target.hits == 0


async def test_allowed_headers_reach_the_target(
    node: NodeProc, client: httpx.AsyncClient, target_url: str
) -> None:
    headers = {"X-Custom": "1", "User-Agent": "ua/1", "Accept-Language": "de", "Sec-Ch-Ua": "x"}
    r = await client.post(
        f"{node.url}/scrape", json=scrape(f"{target_url}/echo", headers=headers), headers=node.auth
    )
    assert r.status_code == 200
    seen = json.loads(r.json()["body"])
    assert seen["x-custom"] == "1"
    assert seen["user-agent"] == "ua/1"
    assert seen["accept-language"] == "de"
    assert seen["via"] == "1.1 n1"


async def test_an_oversized_request_is_refused_before_it_is_read(node: NodeProc) -> None:
    # Only the head is sent: the node answers from Content-Length alone.
    host, port = node.url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(
            b"POST /scrape HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + node.token.encode() + b"\r\n"
            b"Content-Length: 3145728\r\n\r\n{"
        )
        data = b""
        with trio.fail_after(10):
            while b"}}" not in data:
                chunk = await stream.receive_some(65536)
                assert chunk, data
                data += chunk
    assert data.startswith(b"HTTP/1.1 413")
    assert b'"code":"invalid_request"' in data


async def test_the_response_size_is_capped(
    node: NodeProc, client: httpx.AsyncClient, target_url: str
) -> None:
    small = await client.post(
        f"{node.url}/scrape", json=scrape(f"{target_url}/big?n=1000", max_size=4096),
        headers=node.auth,
    )  # fmt: skip
    assert small.status_code == 200
    big = await client.post(
        f"{node.url}/scrape", json=scrape(f"{target_url}/big?n=5000", max_size=4096),
        headers=node.auth,
    )  # fmt: skip
    assert big.status_code == 502
    assert big.json()["error"]["code"] == "too_large"


async def test_a_config_file_sets_the_node_response_cap(
    tmp_path: Path, client: httpx.AsyncClient, target_url: str
) -> None:
    config = tmp_path / "node.toml"
    config.write_text("allow_private = true\nmax_response_size = 2048\n")
    with node_process(tmp_path, "--config", str(config)) as n:
        # The client asks for 10 MB; the node's own cap wins.
        r = await client.post(
            f"{n.url}/scrape", json=scrape(f"{target_url}/big?n=3000"), headers=n.auth
        )
        assert r.json()["error"]["code"] == "too_large"
        ok = await client.post(
            f"{n.url}/scrape", json=scrape(f"{target_url}/big?n=2000"), headers=n.auth
        )
        assert ok.status_code == 200
