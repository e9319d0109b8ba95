"""ProxyTransport and H11Pool(proxy=...) against a real forward proxy.

The proxy is ``tests/proxy_server.py`` in its own process (three of them:
open, requiring credentials, always failing); targets are loopback sites in
this process, plain and TLS. The proxy's ``/__proxy_stats`` says what it
forwarded and tunnelled, and over which client connection.
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import trio
import trio.testing

from conftest import PROXY_PASSWORD, PROXY_USER
from crawlmesh import (
    ConnectFailed,
    DirectTransport,
    FetchError,
    FetchOptions,
    FetchTimeout,
    ProxyTransport,
    Request,
    SettingsError,
    SiteRequest,
    SiteResponse,
    open_site_server,
)
from crawlmesh._cli._site_server import _serve_connection
from crawlmesh._transport import H11Pool, is_node_fault
from crawlmesh._util._log import configure_logging
from crawlmesh._util._redact import redact_exception, redact_text, redact_url
from transport.test_pool import Unsolicited

ROOT = Path(__file__).resolve().parents[2]
OPTS = FetchOptions(connect_timeout=10, read_timeout=10, user_agent="test-agent/1.0")
USER = PROXY_USER
PASSWORD = PROXY_PASSWORD
ENCODED_PASSWORD = quote(PASSWORD, safe="")
BASIC_TOKEN = "Y3Jhd2xlci03OnMzY3IzdC1wQHNzOncvcmQ="  # base64("crawler-7:s3cr3t-p@ss:w/rd")
SECRETS = (PASSWORD, ENCODED_PASSWORD, BASIC_TOKEN, USER)


def with_credentials(proxy_url: str, user: str = USER, password: str = PASSWORD) -> str:
    return proxy_url.replace(
        "http://", f"http://{quote(user, safe='')}:{quote(password, safe='')}@"
    )


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


async def proxy_stats(proxy_url: str) -> dict[str, Any]:
    direct = DirectTransport()
    try:
        response = await direct.fetch(Request(proxy_url + "/__proxy_stats"), OPTS)
    finally:
        await direct.aclose()
    assert response.status == 200
    stats: dict[str, Any] = json.loads(response.body)
    return stats


@asynccontextmanager
async def proxy_transport(url: str, **kwargs: Any) -> AsyncIterator[ProxyTransport]:
    transport = ProxyTransport(url, **kwargs)
    try:
        yield transport
    finally:
        await transport.aclose()


# -- target sites -------------------------------------------------------------------


class Target:
    """``/status/N`` answers N; ``/redirect`` 302s to ``/ok``; anything else
    200 with ``method path body`` as the body."""

    def __init__(self) -> None:
        self.seen: list[SiteRequest] = []

    async def handle(self, request: SiteRequest, stream: trio.abc.Stream) -> SiteResponse:
        self.seen.append(request)
        if request.target.startswith("/status/"):
            return SiteResponse(int(request.target[8:]), b"target says so")
        if request.target == "/redirect":
            return SiteResponse(302, headers=[("Location", "/ok")])
        return SiteResponse(200, f"{request.method} {request.target} ".encode() + request.body)


@pytest.fixture
def target() -> Target:
    return Target()


@pytest.fixture
async def target_url(target: Target) -> AsyncIterator[str]:
    async with open_site_server(target.handle) as base:
        yield base


async def closed_port() -> int:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()  # nothing listens there any more
    return port


class Certs:
    def __init__(self, directory: Path) -> None:
        self.ca = directory / "ca.pem"
        self.cert = directory / "leaf.pem"
        self.key = directory / "leaf.key"

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A throwaway CA and a certificate for 127.0.0.1 it signed.

    Made with the openssl command line: neither trustme nor cryptography is
    a dependency of the project.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a test certificate; https tests skipped")
    d = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (d / "leaf.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    commands = [
        [openssl, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=crawlmesh test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext"],
    ]  # fmt: skip
    for command in commands:
        subprocess.run(command, cwd=d, check=True, capture_output=True, timeout=60)
    return Certs(d)


@pytest.fixture
async def tls_target_url(target: Target, certs: Certs) -> AsyncIterator[str]:
    """``target`` served over TLS, e.g. ``https://127.0.0.1:40123``."""
    serve = partial(
        trio.serve_ssl_over_tcp,
        partial(_serve_connection, target.handle),
        0,
        certs.server_context(),
        host="127.0.0.1",
        https_compatible=True,
    )
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve)
        yield f"https://127.0.0.1:{listeners[0].transport_listener.socket.getsockname()[1]}"
        nursery.cancel_scope.cancel()


# -- plain http through the proxy --------------------------------------------------------


async def test_an_http_target_is_fetched_through_the_proxy(
    proxy_url: str, target: Target, target_url: str
) -> None:
    before = await proxy_stats(proxy_url)
    async with proxy_transport(proxy_url) as transport:
        request = Request(target_url + "/page?q=1")
        response = await transport.fetch(request, OPTS)
    assert (response.status, response.body) == (200, b"GET /page?q=1 ")
    assert response.url == target_url + "/page?q=1"
    assert response.request is request
    # The proxy had it in absolute form; the target in origin form.
    after = await proxy_stats(proxy_url)
    [forwarded] = after["forwarded"][len(before["forwarded"]) :]
    assert (forwarded["method"], forwarded["url"]) == ("GET", target_url + "/page?q=1")
    [seen] = target.seen
    assert seen.target == "/page?q=1"
    assert seen.headers["host"] == target_url.removeprefix("http://")
    assert seen.headers["user-agent"] == "test-agent/1.0"
    assert response.headers["via"] == "1.1 crawlmesh-test-proxy"


async def test_post_body_and_redirects_go_through_the_proxy(
    proxy_url: str, target: Target, target_url: str
) -> None:
    before = await proxy_stats(proxy_url)
    async with proxy_transport(proxy_url) as transport:
        post = await transport.fetch(
            Request(target_url + "/form", method="POST", body=b"a=1&b=2"), OPTS
        )
        moved = await transport.fetch(Request(target_url + "/redirect"), OPTS)
    assert post.body == b"POST /form a=1&b=2"
    assert (moved.url, moved.body) == (target_url + "/ok", b"GET /ok ")
    assert moved.redirects == (target_url + "/redirect",)
    after = await proxy_stats(proxy_url)
    forwarded = after["forwarded"][len(before["forwarded"]) :]
    urls = [f["url"] for f in forwarded]
    assert urls == [target_url + p for p in ("/form", "/redirect", "/ok")]
    # The redirect's empty body was finished: its connection carried on.
    assert len({f["client_port"] for f in forwarded}) == 1


async def test_connections_to_the_proxy_are_kept_alive_across_targets(
    proxy_url: str, target: Target, target_url: str
) -> None:
    other = Target()
    before = await proxy_stats(proxy_url)
    async with open_site_server(other.handle) as other_url, proxy_transport(proxy_url) as t:
        for base in [target_url, other_url] * 3:
            assert (await t.fetch(Request(base + "/ok"), OPTS)).status == 200
    after = await proxy_stats(proxy_url)
    forwarded = after["forwarded"][len(before["forwarded"]) :]
    assert len(forwarded) == 6
    # Six requests to two origins, one client connection to the proxy.
    assert len({f["client_port"] for f in forwarded}) == 1
    assert len(target.seen) == len(other.seen) == 3


async def test_concurrent_requests_through_the_proxy(proxy_url: str, target_url: str) -> None:
    bodies: list[bytes] = []
    async with proxy_transport(proxy_url) as transport:

        async def fetch(n: int) -> None:
            bodies.append((await transport.fetch(Request(f"{target_url}/{n}"), OPTS)).body)

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(fetch, n)
    assert sorted(bodies) == sorted(f"GET /{n} ".encode() for n in range(20))


async def test_a_target_503_through_a_working_proxy_is_an_ordinary_response(
    proxy_url: str, target_url: str
) -> None:
    async with proxy_transport(proxy_url) as transport:
        response = await transport.fetch(Request(target_url + "/status/503"), OPTS)
        # The connection survived: the next request goes through as well.
        again = await transport.fetch(Request(target_url + "/ok"), OPTS)
    assert (response.status, response.body) == (503, b"target says so")
    # The proxy's Proxy-Status says it only relayed the 503.
    assert response.headers["proxy-status"].endswith("received-status=503")
    assert again.status == 200


async def test_a_target_that_refuses_through_a_working_proxy_is_the_targets_fault(
    proxy_url: str,
) -> None:
    port = await closed_port()
    async with proxy_transport(proxy_url) as transport:
        with pytest.raises(ConnectFailed, match="could not reach the target") as info:
            await transport.fetch(Request(f"http://127.0.0.1:{port}/"), OPTS)
    assert info.value.kind == "connect_error"
    assert not is_node_fault(info.value)


async def test_the_proxys_own_503_is_a_node_fault(failing_proxy_url: str, target_url: str) -> None:
    async with proxy_transport(failing_proxy_url) as transport:
        with pytest.raises(FetchError, match="503") as info:
            await transport.fetch(Request(target_url + "/ok"), OPTS)
    assert info.value.kind == "proxy_error"
    assert is_node_fault(info.value)
    assert isinstance(info.value.__cause__, httpx.TransportError)


async def test_a_destination_the_proxy_refuses_is_a_node_fault(proxy_url: str) -> None:
    # TEST-NET-1: the proxy refuses it (403) without trying to connect.
    async with proxy_transport(proxy_url) as transport:
        with pytest.raises(FetchError, match="destination_ip_prohibited") as info:
            await transport.fetch(Request("http://192.0.2.1/"), OPTS)
    assert info.value.kind == "proxy_error"
    assert is_node_fault(info.value)


# -- credentials -------------------------------------------------------------------------


async def test_credentials_are_sent_to_the_proxy_only(
    auth_proxy_url: str, target: Target, target_url: str
) -> None:
    before = await proxy_stats(auth_proxy_url)
    async with proxy_transport(with_credentials(auth_proxy_url)) as transport:
        response = await transport.fetch(Request(target_url + "/ok"), OPTS)
    assert response.status == 200
    after = await proxy_stats(auth_proxy_url)
    [forwarded] = after["forwarded"][len(before["forwarded"]) :]
    assert forwarded["auth"] is True
    [seen] = target.seen
    assert "proxy-authorization" not in seen.headers
    assert_no_secrets(json.dumps(seen.headers))


@pytest.mark.parametrize(
    ("password", "message"),
    [(None, "requires credentials"), ("wrong-password", "refused the credentials")],
)
async def test_missing_or_wrong_credentials_are_proxy_auth_node_faults(
    auth_proxy_url: str, target_url: str, password: str | None, message: str
) -> None:
    url = auth_proxy_url if password is None else with_credentials(auth_proxy_url, USER, password)
    before = await proxy_stats(auth_proxy_url)
    async with proxy_transport(url) as transport:
        with pytest.raises(FetchError, match=message) as info:
            await transport.fetch(Request(target_url + "/ok"), OPTS)
    assert info.value.kind == "proxy_auth"
    assert is_node_fault(info.value)
    assert "407" in str(info.value)
    after = await proxy_stats(auth_proxy_url)
    assert after["refused"].get("auth", 0) == before["refused"].get("auth", 0) + 1
    assert "wrong-password" not in str(info.value) + repr(info.value)


async def test_proxy_url_with_credentials_never_shows_them(
    auth_proxy_url: str, target_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("debug")  # after capsys: the logs go to its stderr
    url = with_credentials(auth_proxy_url, USER, PASSWORD + "-but-wrong")
    transport = ProxyTransport(url)
    try:
        with pytest.raises(FetchError) as info:
            await transport.fetch(Request(target_url + "/ok"), OPTS)
    finally:
        await transport.aclose()
    assert info.value.kind == "proxy_auth"
    err = capsys.readouterr().err
    # Something was logged, and it names the proxy with its credentials masked.
    assert "proxy failed" in err
    assert f"http://***:***@{auth_proxy_url.removeprefix('http://')}" in err
    printed = "".join(traceback.format_exception(info.value))
    for text in [err, printed, repr(info.value), repr(transport), transport.proxy_url]:
        assert_no_secrets(text)


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://{USER}:{ENCODED_PASSWORD}@127.0.0.1:3128",
        f"http://{USER}:{ENCODED_PASSWORD}@127.0.0.1:99999999",
        f"http://{USER}:{ENCODED_PASSWORD}@:3128",
    ],
)
def test_a_bad_proxy_url_is_a_settings_error_without_the_credentials(url: str) -> None:
    with pytest.raises(SettingsError, match=r"\*\*\*:\*\*\*@") as info:
        ProxyTransport(url)
    assert_no_secrets(str(info.value))
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_the_pool_repr_masks_the_credentials() -> None:
    pool = H11Pool(proxy=f"http://{USER}:{ENCODED_PASSWORD}@127.0.0.1:3128")
    assert repr(pool) == "<H11Pool proxy=http://***:***@127.0.0.1:3128>"
    assert BASIC_TOKEN in pool.proxy_secrets


# -- the proxy down or misbehaving ------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_proxy_that_refuses_connections_is_a_node_fault(scheme: str) -> None:
    port = await closed_port()
    async with proxy_transport(f"http://{USER}:{ENCODED_PASSWORD}@127.0.0.1:{port}") as t:
        with pytest.raises(ConnectFailed, match="cannot connect to the proxy") as info:
            await t.fetch(Request(f"{scheme}://127.0.0.1:9/"), OPTS)
    assert info.value.kind == "proxy_connect_error"
    assert is_node_fault(info.value)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert_no_secrets(str(info.value))


async def test_a_proxy_that_never_accepts_is_a_node_fault_timeout(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def never_connects(host: str, port: int) -> trio.SocketStream:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    # A SYN that is never answered, without depending on the network.
    monkeypatch.setattr(trio, "open_tcp_stream", never_connects)
    async with proxy_transport("http://192.0.2.1:3128") as transport:
        with pytest.raises(FetchTimeout, match=re.escape("proxy 192.0.2.1:3128 timed out")) as info:
            await transport.fetch(Request("http://127.0.0.1:9/"), OPTS)
    assert info.value.kind == "proxy_connect_timeout"
    assert is_node_fault(info.value)
    assert trio.current_time() == pytest.approx(OPTS.connect_timeout)


async def test_a_proxy_that_does_not_mark_its_errors(target_url: str) -> None:
    """A bare 502 to a plain-http request cannot be told from the target's;
    a bare 502 to CONNECT can (only the proxy answers CONNECT)."""
    targets: list[str] = []

    async def bare_proxy(request: SiteRequest, stream: trio.abc.Stream) -> SiteResponse:
        targets.append(f"{request.method} {request.target}")
        return SiteResponse(502, b"bad gateway", [("Connection", "close")])

    async with open_site_server(bare_proxy) as fake, proxy_transport(fake) as transport:
        response = await transport.fetch(Request(target_url + "/x"), OPTS)
        with pytest.raises(FetchError, match=re.escape("refused CONNECT 127.0.0.1:9: 502")) as info:
            await transport.fetch(Request("https://127.0.0.1:9/"), OPTS)
    assert response.status == 502
    assert info.value.kind == "proxy_error"
    assert is_node_fault(info.value)
    assert targets == [f"GET {target_url}/x", "CONNECT 127.0.0.1:9"]


async def test_a_proxy_that_hangs_up_on_connect_is_a_node_fault() -> None:
    async def hang_up(request: SiteRequest, stream: trio.abc.Stream) -> None:
        return None  # the server closes the stream without a word

    async with open_site_server(hang_up) as fake, proxy_transport(fake) as transport:
        with pytest.raises(FetchError, match="broke off CONNECT") as info:
            await transport.fetch(Request("https://127.0.0.1:9/"), OPTS)
    assert info.value.kind == "proxy_error"
    assert is_node_fault(info.value)


# -- https through CONNECT ---------------------------------------------------------------


async def test_https_goes_through_a_connect_tunnel_that_is_reused(
    auth_proxy_url: str, target: Target, tls_target_url: str, certs: Certs
) -> None:
    before = await proxy_stats(auth_proxy_url)
    url = with_credentials(auth_proxy_url)
    async with proxy_transport(url, ssl_context=certs.client_context()) as transport:
        first = await transport.fetch(Request(tls_target_url + "/a"), OPTS)
        second = await transport.fetch(Request(tls_target_url + "/redirect"), OPTS)
    assert (first.status, first.body, first.url) == (200, b"GET /a ", tls_target_url + "/a")
    assert (second.body, second.url) == (b"GET /ok ", tls_target_url + "/ok")
    after = await proxy_stats(auth_proxy_url)
    # One tunnel for three requests; the proxy forwarded nothing in the clear.
    [tunnel] = after["tunnels"][len(before["tunnels"]) :]
    assert tunnel["authority"] == tls_target_url.removeprefix("https://")
    assert after["forwarded"] == before["forwarded"]
    assert [s.target for s in target.seen] == ["/a", "/redirect", "/ok"]
    assert all("proxy-authorization" not in s.headers for s in target.seen)


async def test_the_target_certificate_is_verified_through_the_tunnel(
    proxy_url: str, tls_target_url: str
) -> None:
    # The default context does not trust the test CA: the target's fault.
    async with proxy_transport(proxy_url) as transport:
        with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED") as info:
            await transport.fetch(Request(tls_target_url + "/a"), OPTS)
    assert info.value.kind == "connect_error"
    assert not is_node_fault(info.value)


@pytest.mark.parametrize(
    ("fixture", "credentials", "kind"),
    [
        ("auth_proxy_url", False, "proxy_auth"),
        ("auth_proxy_url", True, None),
        ("failing_proxy_url", False, "proxy_error"),
    ],
)
async def test_connect_refusals_are_node_faults(
    request: pytest.FixtureRequest,
    tls_target_url: str,
    certs: Certs,
    fixture: str,
    credentials: bool,
    kind: str | None,
) -> None:
    base: str = request.getfixturevalue(fixture)
    url = with_credentials(base) if credentials else base
    async with proxy_transport(url, ssl_context=certs.client_context()) as transport:
        if kind is None:
            response = await transport.fetch(Request(tls_target_url + "/a"), OPTS)
            assert response.body == b"GET /a "
            return
        with pytest.raises(FetchError) as info:
            await transport.fetch(Request(tls_target_url + "/a"), OPTS)
    assert info.value.kind == kind
    assert is_node_fault(info.value)
    assert f"CONNECT {tls_target_url.removeprefix('https://')}" in str(info.value)


async def test_connect_to_a_target_that_refuses_is_the_targets_fault(proxy_url: str) -> None:
    port = await closed_port()
    async with proxy_transport(proxy_url) as transport:
        with pytest.raises(ConnectFailed, match="connection_refused") as info:
            await transport.fetch(Request(f"https://127.0.0.1:{port}/"), OPTS)
    assert info.value.kind == "connect_error"
    assert not is_node_fault(info.value)


# -- redaction helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("http://user:pass@proxy:3128", "http://***:***@proxy:3128"),
        ("http://user:pass@proxy:3128/x?y=1#z", "http://***:***@proxy:3128/x?y=1#z"),
        ("http://user@proxy", "http://***@proxy"),
        ("http://us:p@ss@proxy/", "http://***:***@proxy/"),  # an unescaped "@"
        ("http://proxy:3128/a@b", "http://proxy:3128/a@b"),  # "@" after the host
        ("http://proxy:3128", "http://proxy:3128"),
        ("user:pass@proxy:3128", "***:***@proxy:3128"),  # no scheme
        ("", ""),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_redact_text_masks_each_secret_longest_first() -> None:
    text = "key=abcd1234 and again abcd1234, prefix abcd, short ab"
    assert redact_text(text, ["abcd", "abcd1234", "ab"]) == (
        "key=*** and again ***, prefix ***, short ab"
    )


def test_redact_exception_cleans_the_whole_chain() -> None:
    def fail() -> None:
        try:
            raise OSError("cannot reach http://u:hunter22@h/")
        except OSError as inner:
            raise FetchError("proxy hunter22 failed") from inner

    with pytest.raises(FetchError) as info:
        fail()
    redact_exception(info.value, ["hunter22"])
    assert str(info.value) == "proxy *** failed"
    assert str(info.value.__cause__) == "cannot reach http://u:***@h/"


def test_redact_exception_cuts_links_it_cannot_rewrite() -> None:
    secret = "hunter" + "22"  # not spelt out: the traceback quotes source lines

    def fail() -> None:
        try:
            try:
                group = ExceptionGroup(f"connecting to {secret} failed", [OSError(secret)])
                raise OSError("all attempts failed") from group
            except OSError as exc:
                raise ValueError("connect failed") from exc
        except ValueError as exc:
            raise FetchError(f"cannot connect to {secret}") from exc

    with pytest.raises(FetchError) as info:
        fail()
    assert secret in "".join(traceback.format_exception(info.value))
    redact_exception(info.value, [secret])
    printed = "".join(traceback.format_exception(info.value))
    assert secret not in printed
    # The links that could be cleaned are kept; the group and below are not.
    assert "cannot connect to ***" in printed
    assert "all attempts failed" in printed
    assert "ExceptionGroup" not in printed


# -- an idle TLS connection with bytes nobody asked for (issue 14) ------------------------


async def test_an_idle_tls_connection_with_unsolicited_bytes_is_discarded(certs: Certs) -> None:
    server = Unsolicited()

    transport = DirectTransport(transport=H11Pool(ssl_context=certs.client_context()))
    try:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(
                    trio.serve_ssl_over_tcp,
                    server.serve,
                    0,
                    certs.server_context(),
                    host="127.0.0.1",
                    https_compatible=True,
                )
            )
            port = listeners[0].transport_listener.socket.getsockname()[1]
            url = f"https://127.0.0.1:{port}/"
            first = await transport.fetch(Request(url), OPTS)
            server.go.set()
            with trio.fail_after(10):
                await server.sent.wait()  # (the TLS record is in the client's socket)
            second = await transport.fetch(Request(url), OPTS)
            third = await transport.fetch(Request(url), OPTS)
            nursery.cancel_scope.cancel()
    finally:
        await transport.aclose()
    assert first.body == second.body == third.body == b"right"
    # A new connection after the unsolicited bytes, and that one kept.
    assert len(server.ports) == 3
    assert server.ports[0] != server.ports[1] == server.ports[2]
