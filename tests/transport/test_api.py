"""ApiTransport against a loopback server that plays a scraping API.

The fake API checks its key, decodes the ``url`` parameter and fetches
nothing: it answers with a canned status and a JSON echo of what it was
asked, chosen by the target's path.
"""

from __future__ import annotations

import gzip
import json
import re
import traceback
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import trio
import trio.testing

from crawlmesh import (
    ApiTransport,
    ConnectFailed,
    FetchError,
    FetchOptions,
    FetchTimeout,
    Request,
    ResponseTooLarge,
    SettingsError,
    SiteRequest,
    SiteResponse,
    open_site_server,
)
from crawlmesh._transport import is_node_fault
from crawlmesh._util._log import configure_logging

MiB = 1024 * 1024
OPTS = FetchOptions(
    connect_timeout=10, read_timeout=10, max_response_size=MiB, user_agent="test-agent/1.0"
)
KEY_VAR = "CRAWLMESH_TEST_API_KEY"
KEY = "k3y+with/special&chars="  # every character that needs encoding in a query


class Api:
    """``GET /v1/?key=KEY&url=TARGET[&method=M&body=B]``.

    By the target's path: ``/status/N`` answers N; ``/moved`` 302s to
    ``/landed`` (relative: the target's own redirect, passed through);
    ``/big`` is 2 MiB; ``/gzip`` a gzip body; anything else 200. A wrong key
    is the API's own 401.
    """

    def __init__(self) -> None:
        self.seen: list[SiteRequest] = []

    def targets(self) -> list[str]:
        return [parse_qs(urlsplit(s.target).query)["url"][0] for s in self.seen]

    async def handle(self, request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        self.seen.append(request)
        path, _, query = request.target.partition("?")
        args = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if path != "/v1/" or request.method != "GET":
            return SiteResponse(404, b"no such API endpoint")
        if args.get("key") != KEY:
            return SiteResponse(401, b'{"error": "invalid api key"}')
        target = args["url"]
        echo = json.dumps(
            {"url": target, "method": args.get("method"), "body": args.get("body")}
        ).encode()
        target_path = urlsplit(target).path
        if target_path.startswith("/status/"):
            return SiteResponse(int(target_path[8:]), echo)
        if target_path == "/moved":
            return SiteResponse(302, echo, [("Location", "/landed")])
        if target_path == "/big":
            return SiteResponse(200, b"b" * (2 * MiB))
        if target_path == "/gzip":
            return SiteResponse(200, gzip.compress(echo * 10), [("Content-Encoding", "gzip")])
        return SiteResponse(200, echo, [("Content-Type", "application/json"), ("X-Api", "fake")])


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
async def api_url(api: Api) -> AsyncIterator[str]:
    async with open_site_server(api.handle) as base:
        yield base


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_VAR, KEY)
    return KEY


@pytest.fixture
async def transport(api_url: str, key: str) -> AsyncIterator[ApiTransport]:
    t = ApiTransport(f"{api_url}/v1/?key={{env:{KEY_VAR}}}&url={{url}}")
    try:
        yield t
    finally:
        await t.aclose()


def assert_no_key(text: str) -> None:
    for form in (KEY, quote(KEY, safe=""), quote(KEY)):
        assert form not in text


async def closed_port() -> int:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()  # nothing listens there any more
    return port


# -- expansion and the response --------------------------------------------------------


async def test_the_template_is_expanded_and_the_answer_is_the_targets(
    api: Api, transport: ApiTransport
) -> None:
    target = "http://shop.example/search?q=caf%C3%A9&lang=en&next=/a?b=c#top"
    request = Request(target, headers={"Authorization": "Bearer for-the-target"})
    response = await transport.fetch(request, OPTS)

    [seen] = api.seen
    sent = target.partition("#")[0]  # the fragment stays here
    assert seen.target == f"/v1/?key={quote(KEY, safe='')}&url={quote(sent, safe='')}"
    assert seen.method == "GET"
    assert seen.headers["user-agent"] == "test-agent/1.0"
    # The target's own headers are not the API's business.
    assert "authorization" not in seen.headers
    assert "cookie" not in seen.headers

    assert response.url == sent  # a fragment never reaches response.url
    assert response.request is request
    assert response.redirects == ()
    assert response.status == 200
    assert response.headers["x-api"] == "fake"
    assert response.json() == {"url": sent, "method": None, "body": None}


@pytest.mark.parametrize("status", [404, 500, 503])
async def test_the_targets_status_passes_through(transport: ApiTransport, status: int) -> None:
    target = f"http://shop.example/status/{status}"
    response = await transport.fetch(Request(target), OPTS)
    assert response.status == status
    assert response.json()["url"] == target


async def test_the_apis_own_refusal_is_returned_as_a_response(
    api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documented: an API's 401 cannot be told from a target's."""
    monkeypatch.setenv(KEY_VAR, "not-the-key")
    t = ApiTransport(f"{api_url}/v1/?key={{env:{KEY_VAR}}}&url={{url}}")
    try:
        response = await t.fetch(Request("http://shop.example/"), OPTS)
    finally:
        await t.aclose()
    assert response.status == 401
    assert response.url == "http://shop.example/"


async def test_a_redirect_is_the_targets_and_is_followed_through_the_api(
    api: Api, transport: ApiTransport
) -> None:
    response = await transport.fetch(Request("http://shop.example/moved"), OPTS)
    assert response.url == "http://shop.example/landed"
    assert response.redirects == ("http://shop.example/moved",)
    assert response.json()["url"] == "http://shop.example/landed"
    assert api.targets() == ["http://shop.example/moved", "http://shop.example/landed"]
    assert all(s.target.startswith("/v1/?") for s in api.seen)


async def test_limits_and_decoding_are_the_direct_transports(transport: ApiTransport) -> None:
    decoded = await transport.fetch(Request("http://shop.example/gzip"), OPTS)
    echo = json.dumps({"url": "http://shop.example/gzip", "method": None, "body": None})
    assert decoded.body == echo.encode() * 10
    with pytest.raises(ResponseTooLarge, match="size limit") as info:
        await transport.fetch(Request("http://shop.example/big"), OPTS)
    assert info.value.kind == "too_large"


async def test_connections_to_the_api_are_kept_alive(api: Api, api_url: str, key: str) -> None:
    ports: list[int] = []

    async def handle(request: SiteRequest, stream: trio.SocketStream) -> SiteResponse | None:
        ports.append(stream.socket.getpeername()[1])
        return await api.handle(request, stream)

    async with open_site_server(handle) as base:
        t = ApiTransport(f"{base}/v1/?key={{env:{KEY_VAR}}}&url={{url}}")
        try:
            for n in range(4):
                assert (await t.fetch(Request(f"http://shop.example/{n}"), OPTS)).status == 200
        finally:
            await t.aclose()
    assert len(ports) == 4
    assert len(set(ports)) == 1


# -- methods ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "HEAD", "PUT"])
async def test_only_get_without_a_method_placeholder(
    api: Api, transport: ApiTransport, method: str
) -> None:
    request = Request("http://shop.example/form", method=method, body=b"a=1")
    with pytest.raises(FetchError, match=f"only GET requests, not {method}") as info:
        await transport.fetch(request, OPTS)
    assert info.value.kind == "unsupported_method"
    assert info.value.request is request
    assert not is_node_fault(info.value)
    assert api.seen == []


async def test_method_and_body_placeholders(api: Api, api_url: str, key: str) -> None:
    t = ApiTransport(
        f"{api_url}/v1/?key={{env:{KEY_VAR}}}&method={{method}}&body={{body}}&url={{url}}"
    )
    try:
        body = "q=a b&c=d/é".encode()
        response = await t.fetch(
            Request("http://shop.example/form", method="POST", body=body), OPTS
        )
    finally:
        await t.aclose()
    assert response.json() == {
        "url": "http://shop.example/form",
        "method": "POST",
        "body": body.decode(),
    }
    [seen] = api.seen
    assert seen.method == "GET"  # the API is always called with GET
    assert seen.body == b""


# -- configuration errors ----------------------------------------------------------------


def test_a_missing_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRAWLMESH_TEST_MISSING", raising=False)
    with pytest.raises(
        SettingsError, match="environment variable CRAWLMESH_TEST_MISSING is not set"
    ):
        ApiTransport("https://api.example/v1/?key={env:CRAWLMESH_TEST_MISSING}&url={url}")


def test_an_empty_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRAWLMESH_TEST_EMPTY", "")
    with pytest.raises(SettingsError, match="environment variable CRAWLMESH_TEST_EMPTY is empty"):
        ApiTransport("https://api.example/v1/?key={env:CRAWLMESH_TEST_EMPTY}&url={url}")


async def test_the_environment_is_read_when_the_transport_is_made(
    api: Api, api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VAR, KEY)
    t = ApiTransport(f"{api_url}/v1/?key={{env:{KEY_VAR}}}&url={{url}}")
    monkeypatch.delenv(KEY_VAR)
    try:
        response = await t.fetch(Request("http://shop.example/"), OPTS)
    finally:
        await t.aclose()
    # The key was taken at creation: the API still accepts the request.
    assert response.status == 200


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("https://api.example/v1/?key=abc", "has no {url} placeholder"),
        ("https://api.example/v1/?url={url}&x={target}", "unknown placeholder {target}"),
        ("https://api.example/v1/?url={url}&x={", "a brace outside a placeholder"),
        ("https://api.example/v1/?url={url}&x={env:1BAD}", "not a valid variable name"),
        ("ftp://api.example/?url={url}", "does not make an http(s) URL"),
        ("https:///v1/?url={url}", "does not make an http(s) URL"),
        ("https://api.example:port/?url={url}", "does not make an http(s) URL"),
    ],
)
def test_bad_templates(template: str, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        ApiTransport(template)


def test_messages_about_a_template_leave_out_its_query() -> None:
    # A key hard-coded in the query must not end up in an error either.
    with pytest.raises(SettingsError) as info:
        ApiTransport("https://api.example/v1/?key=hard-coded-key&x={bad}&url={url}")
    assert "hard-coded-key" not in str(info.value)
    assert "https://api.example/v1/" in str(info.value)


# -- failures and secrets ------------------------------------------------------------------


async def test_api_host_down_is_a_node_fault(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The secret is the port: the connect error would name it unredacted.
    port = str(await closed_port())
    monkeypatch.setenv("CRAWLMESH_TEST_API_PORT", port)
    monkeypatch.setenv(KEY_VAR, KEY)
    configure_logging("debug")  # after capsys: the logs go to its stderr
    t = ApiTransport(
        f"http://127.0.0.1:{{env:CRAWLMESH_TEST_API_PORT}}/v1/?key={{env:{KEY_VAR}}}&url={{url}}"
    )
    try:
        with pytest.raises(ConnectFailed, match="cannot reach the API") as info:
            await t.fetch(Request("http://shop.example/"), OPTS)
    finally:
        await t.aclose()
    assert info.value.kind == "api_connect_error"
    assert is_node_fault(info.value)
    assert "127.0.0.1:***" in str(info.value)
    err = capsys.readouterr().err
    assert "api failed" in err
    # The traceback as a log would print it: the whole chain, groups too.
    printed = "".join(traceback.format_exception(info.value))
    assert "ConnectFailed" in printed
    for text in [err, printed, repr(info.value), repr(t)]:
        assert port not in text
        assert_no_key(text)


async def test_a_slow_api_is_a_read_timeout_not_a_node_fault(
    autojump_clock: trio.testing.MockClock, key: str
) -> None:
    async def stall(request: SiteRequest, stream: trio.SocketStream) -> SiteResponse:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async with open_site_server(stall) as base:
        t = ApiTransport(f"{base}/v1/?key={{env:{KEY_VAR}}}&url={{url}}")
        try:
            with pytest.raises(FetchTimeout) as info:
                await t.fetch(Request("http://shop.example/"), OPTS)
        finally:
            await t.aclose()
    assert info.value.kind == "read_timeout"
    assert not is_node_fault(info.value)
    assert_no_key(str(info.value))


def test_the_repr_shows_no_secret(key: str) -> None:
    t = ApiTransport(f"https://api.example/v1/?key={{env:{KEY_VAR}}}&url={{url}}")
    assert repr(t) == "<ApiTransport https://api.example/v1/>"
