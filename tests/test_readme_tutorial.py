"""The README's "A spider in five minutes" runs as written: its spider,
against the shop ``crawlmesh demo --serve`` serves, with the CLI command the
README gives."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from cli.test_cli import ROOT, run_cli

README = (ROOT / "README.md").read_text()
TUTORIAL = README[README.index("## A spider in five minutes") :]
TUTORIAL = TUTORIAL[: TUTORIAL.index("\n## ", 1)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", TUTORIAL, re.S)


def test_the_tutorial_spider_crawls_the_shop_the_demo_serves(
    crawlmesh_cli: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    serve, crawl = sh_blocks()[0].strip(), sh_blocks()[1].splitlines()[0].strip()
    assert serve == "crawlmesh demo --serve 8000"
    assert crawl == "crawlmesh crawl spiders.books -o books.jsonl --errors errors.jsonl"
    # Port 8000 may be taken here: the same shop on a free port.
    port = free_port()
    (tmp_path / "spiders").mkdir()
    spider = re.search(r"```python\n(.*?)```", TUTORIAL, re.S)
    assert spider is not None
    assert "http://127.0.0.1:8000/" in spider[1]
    (tmp_path / "spiders" / "books.py").write_text(spider[1].replace(":8000/", f":{port}/"))
    server = subprocess.Popen(
        [str(crawlmesh_cli), *serve.split()[1:-1], str(port)],
        cwd=tmp_path, env=cli_env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        line = server.stderr.readline()  # written once the shop is served
        assert f"serving a 200-book shop at http://127.0.0.1:{port}/" in line, line
        result = run_cli(crawlmesh_cli, *crawl.split()[1:], cwd=tmp_path, env=cli_env)
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C, as the README says
        code = server.wait(30)
        assert server.stderr is not None
        server.stderr.close()
    assert code == 0
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in (tmp_path / "books.jsonl").read_text().splitlines()]
    assert len(items) == 200
    assert all(set(i) == {"title", "price", "url"} and i["title"] for i in items)
    errors = [json.loads(line) for line in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert [(e["kind"], e["status"]) for e in errors] == [("http_error", 404)]


def test_a_taken_port_is_one_line(
    crawlmesh_cli: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = run_cli(crawlmesh_cli, "demo", "--serve", port, cwd=tmp_path, env=cli_env)
    assert time.monotonic() - started < 30
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"crawlmesh: error: cannot serve the demo shop on 127.0.0.1:{port}: "
        "[Errno 98] Address already in use"
    ]
