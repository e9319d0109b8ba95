"""Node settings and the SSRF guard's address rules, without a process."""

from __future__ import annotations

import tomllib
from pathlib import Path

import httpx
import pytest
import trio

from crawlmesh import SettingsError, open_site_server
from crawlmesh._node import NodeConfig, load_node_config
from crawlmesh._transport import AddressGuard, ClassifiedError

README = Path(__file__).parents[2] / "README.md"


def test_every_node_setting_is_documented() -> None:
    section = README.read_text().split("## The node service", 1)[1].split("\n## ", 1)[0]
    missing = [f for f in NodeConfig.__struct_fields__ if f"`{f}`" not in section]
    assert missing == []


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.5", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.3.4", "private"),
        ("fc00::1", "private"),
        ("fe80::1", "link-local"),
        ("169.254.1.1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.170.2", "cloud metadata"),
        ("ff02::1", "multicast"),
        ("::", "unspecified"),
        ("192.0.2.1", "private"),  # documentation (TEST-NET-1)
        ("240.0.0.1", "private"),  # reserved for future use
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),  # Teredo client 10.0.0.1
        ("64:ff9b:1::a9fe:a9fe", "cloud metadata"),  # local-use NAT64
        ("::ffff:0:a9fe:a9fe", "cloud metadata"),  # IPv4-translated
        ("::7f00:1", "loopback"),  # IPv4-compatible
        ("fec0::1", "private"),  # site-local
        ("168.63.129.16", "cloud metadata"),  # Azure
    ],
)
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    refusal = AddressGuard().refusal(address)
    assert refusal is not None
    assert why in refusal


def test_public_addresses_pass() -> None:
    guard = AddressGuard()
    for address in ("93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"):
        assert guard.refusal(address) is None


def test_exceptions_do_not_reach_cloud_metadata() -> None:
    loose = AddressGuard(allow_private=True, allow_networks=["169.254.0.0/16"])
    assert loose.refusal("10.0.0.1") is None
    assert loose.refusal("169.254.169.254") == "cloud metadata"
    ranged = AddressGuard(allow_networks=["10.1.0.0/16"])
    assert ranged.refusal("10.1.2.3") is None
    assert ranged.refusal("10.2.0.1") == "private"


async def test_the_connected_peer_is_checked_again() -> None:
    """Whatever resolution said, a connection whose peer is refused is closed
    and refused (here: a guard that allows the name's address but not the
    peer it ends up with)."""

    async def handler(request: object, stream: trio.SocketStream) -> None:
        return None

    async with open_site_server(handler) as base:  # type: ignore[arg-type]
        port = int(base.rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        with pytest.raises(ClassifiedError) as info:
            AddressGuard().check_peer(stream, "example.test")
        assert info.value.kind == "blocked_address"
        assert "127.0.0.1" in str(info.value)
        # The socket was closed by the guard.
        assert stream.socket.fileno() == -1
        allowed = await AddressGuard(allow_networks=["127.0.0.1/32"]).open_stream("127.0.0.1", port)
        await allowed.aclose()


async def test_a_name_that_resolves_nowhere_is_a_connect_error() -> None:
    with pytest.raises(httpx.ConnectError):
        await AddressGuard().resolve("no-such-host.invalid", 80)


def test_config_files_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[node]\nconcurrency = 8\nallow_networks = ["10.0.0.0/8"]\n')
    config = load_node_config(str(path), {"concurrency": 4, "region": None})
    assert config.concurrency == 4  # the flag wins
    assert config.allow_networks == ["10.0.0.0/8"]
    assert config.region == ""
    path.write_text("concurrency = 'many'\n")
    with pytest.raises(SettingsError, match="concurrency"):
        load_node_config(str(path), {})
    path.write_text("concurrency = [\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_node_config(str(path), {})
    with pytest.raises(SettingsError, match="allow_headers"):
        load_node_config(None, {"allow_headers": ["bad header"]})


def test_the_header_rules() -> None:
    config = NodeConfig(allow_headers=["accept", "x-*"])
    assert config.header_refusal("Accept") is None
    assert config.header_refusal("X-Trace") is None
    assert config.header_refusal("X-Forwarded-Host") is not None  # denied whatever the list
    assert config.header_refusal("Proxy-Connection") is not None
    assert config.header_refusal("Referer") is not None  # not on this list


def test_the_example_node_config_loads() -> None:
    path = README.parent / "examples" / "node" / "node.toml"
    config = load_node_config(str(path), {})
    assert config.name == "eu-1"
    assert config.host == "0.0.0.0"


def test_the_example_nodes_file_names_its_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    from crawlmesh._settings import validate_nodes

    path = README.parent / "examples" / "node" / "nodes.toml"
    raw = tomllib.loads(path.read_text())["nodes"]
    monkeypatch.setenv("CRAWLMESH_NODE_TOKEN", "t" * 20)
    # The token file does not exist here: refused with a message naming it.
    with pytest.raises(SettingsError, match=r"token_file /etc/crawlmesh/node.token"):
        validate_nodes(raw, "example")
    specs = validate_nodes(raw[1:], "example")
    assert specs[0].token_env == "CRAWLMESH_NODE_TOKEN"
