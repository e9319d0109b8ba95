from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from crawlmesh import SettingsError
from crawlmesh._balancer import PROBES, TRANSPORTS
from crawlmesh._settings import NODE_KINDS, NodeKind, load_nodes_file, load_settings

GOOD = """
[[nodes]]
name = "eu-1"
kind = "proxy"
url = "http://user:secret@127.0.0.1:3128"
region = "eu-west"
weight = 3
max_connections = 16
tags = ["residential"]

[[nodes]]
name = "api"
kind = "api"
template = "https://api.example.invalid/?key={env:KEY}&url={url}"

[[nodes]]
name = "local"
"""


def test_a_good_file(tmp_path: Path) -> None:
    f = tmp_path / "nodes.toml"
    f.write_text(GOOD)
    specs = load_nodes_file(f)
    assert [s.name for s in specs] == ["eu-1", "api", "local"]
    assert specs[0].weight == 3.0
    assert specs[0].max_connections == 16
    assert specs[2].kind == "direct"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[[nodes]]\nname = 'a'\nwieght = 2\n",
            "node 1 ('a'): Object contains unknown field wieght",
        ),
        (
            "[[nodes]]\nname = 'a'\nkind = 'socks'\n",
            "node 1 ('a'): kind 'socks' is not one of direct (a direct connection from this "
            "process), proxy (an HTTP forward proxy, CONNECT for https), api (a scraping "
            "API called with a URL template), node (a `crawlmesh node` service)",
        ),
        ("[[nodes]]\nname = 'a'\nweight = 0\n", "Expected float > 0.0"),
        ("[[nodes]]\nname = 'a'\nkind = 'proxy'\n", "kind 'proxy' needs url"),
        (
            "[[nodes]]\nname = 'a'\nkind = 'api'\ntemplate = 'http://x/'\n",
            "template containing {url}",
        ),
        ("[[nodes]]\nname = 'a'\n[[nodes]]\nname = 'a'\n", "duplicate node names: a"),
        ("[[nodes]]\nname = 'a b'\n", "name must be"),
        ("nodes = 3\n", "must be an array of tables"),
        ("[[node]]\nname = 'a'\n", "unknown top-level keys ['node']"),
        ("", "no [[nodes]] declared"),
        ("[[nodes]\n", "is not valid TOML"),
    ],
)
def test_bad_files_are_refused_with_the_node_named(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "nodes.toml"
    f.write_text(text)
    with pytest.raises(SettingsError) as info:
        load_nodes_file(f)
    assert message in str(info.value)
    assert str(f) in str(info.value)


def test_nodes_in_a_settings_layer_are_checked() -> None:
    s = load_settings([("file", {"nodes": [{"name": "a", "weight": 2}]})])
    assert s.nodes[0].weight == 2.0
    with pytest.raises(SettingsError, match="file: node 1 \\('a'\\): Object contains unknown"):
        load_settings([("file", {"nodes": [{"name": "a", "colour": "red"}]})])


def test_strategy_setting_is_checked() -> None:
    assert load_settings([("-s", {"balancer.strategy": "least-conn"})]).balancer.strategy == (
        "least-conn"
    )
    with pytest.raises(SettingsError, match=r"balancer\.strategy must be one of"):
        load_settings([("-s", {"balancer.strategy": "fastest"})])


def test_every_node_kind_has_one_declaration_a_transport_and_a_probe() -> None:
    kinds = list(get_args(NodeKind))
    assert list(NODE_KINDS) == kinds
    assert list(TRANSPORTS) == kinds
    assert list(PROBES) == kinds
