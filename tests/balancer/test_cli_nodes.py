"""The mesh from the command line: --nodes, nodes check, --stats."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

CLI = Path(sys.executable).parent / "crawlmesh"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nodes_check_reports_each_node(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.toml"
    nodes.write_text(
        "[[nodes]]\nname = 'local'\n\n"
        f"[[nodes]]\nname = 'dead-proxy'\nkind = 'proxy'\nurl = 'http://127.0.0.1:{_closed_port()}'\n"
    )
    result = subprocess.run(
        [CLI, "nodes", "check", "--nodes", str(nodes)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert " ok " in rows["local"]
    assert "FAIL" in rows["dead-proxy"]


def test_a_bad_node_file_is_a_usage_error(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.toml"
    nodes.write_text("[[nodes]]\nname = 'a'\nkind = 'proxy'\n")
    result = subprocess.run(
        [CLI, "demo", "--nodes", str(nodes)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"crawlmesh: error: nodes file {nodes}: node 1 ('a'): kind 'proxy' needs url = "
        "'http://[user:pass@]host:port'"
    ]


def test_demo_stats_file_has_the_nodes(tmp_path: Path) -> None:
    stats_path = tmp_path / "stats.json"
    result = subprocess.run(
        [CLI, "demo", "-q", "-o", str(tmp_path / "items.jsonl"), "--stats", str(stats_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["items"] == 200
    nodes = {n["name"]: n for n in stats["nodes"]}
    assert set(nodes) == {"eu-1", "us-1", "ap-1"}
    assert sum(n["requests"] for n in nodes.values()) >= stats["pages"]
    assert nodes["eu-1"]["expected_share"] == 0.5
    assert nodes["ap-1"]["errors"]  # the demo's flaky node
