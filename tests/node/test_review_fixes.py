"""Regressions found by a security review of the node service."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from crawlmesh import DirectTransport, FetchError, FetchOptions, RedirectError, Request
from crawlmesh._transport import MAX_COOKIES_PER_JAR
from node.nodes import NodeProc, node_process

OPTS = FetchOptions(read_timeout=5.0)


async def test_a_jar_keeps_a_bounded_number_of_cookies(target_url: str) -> None:
    t = DirectTransport()
    try:
        for start in range(0, 1400, 200):
            await t.fetch(Request(f"{target_url}/many-cookies?from={start}", session="s"), OPTS)
        sent = await t.fetch(Request(f"{target_url}/cookie", session="s"), OPTS)
    finally:
        await t.aclose()
    names = [c.split("=")[0] for c in sent.body.decode().split("; ")]
    assert len(names) == MAX_COOKIES_PER_JAR
    assert "c1399" in names  # the newest kept, the oldest dropped
    assert "c0" not in names


async def test_cookies_given_as_a_header_stay_with_their_origin(target_url: str) -> None:
    port = target_url.rsplit(":", 1)[1]
    other = f"http://localhost:{port}/echo"
    t = DirectTransport()
    try:
        r = await t.fetch(
            Request(
                f"{target_url}/redirect?to={other}",
                headers={"Cookie": "sid=SECRET", "Authorization": "Bearer x", "X-Trace": "1"},
            ),
            OPTS,
        )
    finally:
        await t.aclose()
    seen = json.loads(r.body)
    assert "cookie" not in seen
    assert "authorization" not in seen
    assert seen["x-trace"] == "1"


async def test_a_bad_location_is_the_targets_fault(target_url: str) -> None:
    t = DirectTransport()
    try:
        with pytest.raises(RedirectError) as info:
            await t.fetch(Request(f"{target_url}/redirect?to=http://[v1.x]/"), OPTS)
    finally:
        await t.aclose()
    assert info.value.kind == "bad_redirect"


async def test_a_header_h11_will_not_send_is_the_requests_fault(target_url: str) -> None:
    t = DirectTransport()
    try:
        with pytest.raises(FetchError) as info:
            await t.fetch(Request(f"{target_url}/", headers={"X-A": "b "}), OPTS)
    finally:
        await t.aclose()
    assert info.value.kind == "invalid_request"


async def test_sessions_are_kept_per_token(
    tmp_path: Path, client: httpx.AsyncClient, target_url: str
) -> None:
    tokens = tmp_path / "two-tokens"
    tokens.write_text("first-token-aaaaaaaaaaaa\nsecond-token-bbbbbbbbbbb\n")
    tokens.chmod(0o600)
    with node_process(tmp_path, "--allow-private", "--token-file", str(tokens)) as n:
        one = {"Authorization": "Bearer first-token-aaaaaaaaaaaa", "X-Session-ID": "shop"}
        two = {"Authorization": "Bearer second-token-bbbbbbbbbbb", "X-Session-ID": "shop"}

        async def get(path: str, headers: dict[str, str]) -> str:
            r = await client.get(
                f"{n.url}/scrape", params={"url": f"{target_url}{path}"}, headers=headers
            )
            assert r.status_code == 200, r.text
            return str(r.json()["body"])

        await get("/set-cookie?v=login", one)
        assert await get("/cookie", one) == "v=login"
        assert await get("/cookie", two) == ""  # the same id under another token


async def test_node_answers(node: NodeProc, client: httpx.AsyncClient, target_url: str) -> None:
    async def post(**fields: object) -> httpx.Response:
        return await client.post(f"{node.url}/scrape", json=fields, headers=node.auth)

    # Whitespace around a header value: a clear 400, not a 500.
    r = await post(url=f"{target_url}/", headers={"X-A": "b "})
    assert r.status_code == 400
    assert "whitespace" in r.json()["error"]["message"]
    # A malformed redirect is the target's failure.
    r = await post(url=f"{target_url}/redirect?to=http://[v1.x]/")
    assert r.status_code == 502
    assert r.json()["error"] == {
        "code": "target_redirect", "message": r.json()["error"]["message"], "kind": "bad_redirect"
    }  # fmt: skip
    # Text goes as UTF-8; control characters (six bytes each in JSON) as base64.
    r = await post(url=f"{target_url}/big?n=1000")
    assert r.json()["body_encoding"] == "utf-8"
    r = await post(url=f"{target_url}/big?n=100000&fill=1")
    assert r.json()["body_encoding"] == "base64"
    assert len(r.content) < 140_000


async def test_a_trickling_target_ends_as_a_target_timeout(
    tmp_path: Path, client: httpx.AsyncClient, target_url: str
) -> None:
    config = tmp_path / "node.toml"
    config.write_text("allow_private = true\nconnect_timeout = 0.5\n")
    with node_process(tmp_path, "--config", str(config)) as n:
        r = await client.post(
            f"{n.url}/scrape", json={"url": f"{target_url}/trickle", "timeout": 1},
            headers=n.auth,
        )  # fmt: skip
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "target_timeout"
    assert r.json()["error"]["kind"] == "total_timeout"
