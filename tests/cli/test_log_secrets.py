"""A whole crawl's output holds no secret, and its request lines say which
request they are about.

``crawlmesh crawl`` runs at ``--log-level debug`` through a proxy that wants
a password, a ``crawlmesh node`` that wants a bearer token and a scraping API
that wants a key, next to a dead node of each kind, over pages that fail
(404, 500, a block page, a 429, robots.txt): every path that logs is taken.
The spider is careless too: its callback logs the node's token and raises
an error quoting the API key and a proxy URL with its password. Then stderr
(console and JSON lines), the errors file, the stats file and the node's own
log are searched for every secret.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trio

from mesh_world import (
    DEAD_PROXY_PASSWORD,
    ENV,
    PROXY_USER,
    SECRETS,
    open_shops,
    secret_node,
    secret_proxy,
    write_nodes,
)
from node.nodes import NodeProc

PAGES = 8  # per domain
LEAKY_SPIDER = """\
import os

import structlog

from spiders.follow import Follow

log = structlog.get_logger("spiders.leaky")


class Leaky(Follow):
    leak = ""

    async def parse(self, response):
        if response.url.endswith("/p/0"):
            log.warning("calling home", token=os.environ["CRAWLMESH_TEST_NODE_TOKEN"])
            key = os.environ["CRAWLMESH_TEST_API_KEY"]
            raise RuntimeError(f"the API refused key {key} (via {self.leak})")
        async for out in super().parse(response):
            yield out
"""

# Lines about one request: each must carry url, domain, node and attempt.
REQUEST_EVENTS = {
    "fetched",
    "retrying",
    "request failed",
    "disallowed by robots.txt",
    "pausing a domain as Retry-After asks",
    "lowering a domain's concurrency",
    "node failed; trying another",
    "ban detected",
    "proxy failed",
    "api failed",
    "callback raised",
    "retry budget spent; not retrying",
    "ignoring an unreadable Retry-After",
    "robots.txt unreachable; disallowing the origin",
    "robots.txt answered a server error; disallowing the origin",
    "cannot write items; stopping",
    "item dropped: over max_items",
}
# Lines this crawl must produce (its failures are made to).
EXPECTED_EVENTS = {
    "fetched",
    "retrying",
    "request failed",
    "disallowed by robots.txt",
    "pausing a domain as Retry-After asks",
    "node failed; trying another",
    "ban detected",
    "proxy failed",
    "api failed",
    "circuit breaker opened",
}


@pytest.fixture(scope="module")
def proxy_with_password() -> Iterator[str]:
    yield from secret_proxy()


@pytest.fixture(scope="module")
def node_with_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProc]:
    yield from secret_node(tmp_path_factory.mktemp("node"))


async def crawl(
    cli: Path,
    project: Path,
    env: dict[str, str],
    nodes: Path,
    start_url: str,
    *args: str,
) -> subprocess.CompletedProcess[bytes]:
    leak = f"http://{PROXY_USER}:{DEAD_PROXY_PASSWORD}@127.0.0.1:1/"
    (project / "spiders" / "leaky.py").write_text(LEAKY_SPIDER)
    command = [
        str(cli), "crawl", "spiders.leaky", "-a", f"start_url={start_url}", "-a", f"leak={leak}",
        "--nodes", str(nodes), "-o", str(project / "items.jsonl"),
        "--errors", str(project / "errors.jsonl"), "--stats", str(project / "stats.json"),
        "-s", "balancer.node_retries=5", "-s", "retry.backoff_base=0.05",
        "-s", "progress_interval=0.5", *args,
    ]  # fmt: skip
    with trio.fail_after(120):
        return await trio.run_process(
            command,
            cwd=project,
            env={**env, **ENV},
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} in {where}"
    assert "s3cr3t" not in text, f"a secret in {where}"  # whatever its spelling


@pytest.mark.parametrize("log_format", ["json", "console"])
async def test_a_crawl_logs_no_secret_and_names_each_request(
    crawlmesh_cli: Path,
    cli_project: Path,
    cli_env: dict[str, str],
    proxy_with_password: str,
    node_with_token: NodeProc,
    log_format: str,
) -> None:
    async with open_shops(PAGES) as (shops, api_url):
        nodes = write_nodes(cli_project, proxy_with_password, node_with_token.url, api_url)
        first = next(iter(shops.values()))
        result = await crawl(
            crawlmesh_cli,
            cli_project,
            cli_env,
            nodes,
            first.base + "/",
            "--log-level",
            "debug",
            "--log-format",
            log_format,
            "-s",
            "balancer.strategy=round-robin",
        )
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr[-3000:]
    # The crawl went through: every item page of every domain, despite the dead nodes.
    items = [json.loads(line) for line in (cli_project / "items.jsonl").read_text().splitlines()]
    assert len(items) == (PAGES - 1) * len(shops)  # (/p/0 raises)

    assert_no_secret("stderr", stderr)
    errors = (cli_project / "errors.jsonl").read_text()
    assert errors  # (404s, 500s, block pages)
    assert_no_secret("the errors file", errors)
    assert_no_secret("the stats file", (cli_project / "stats.json").read_text())
    assert_no_secret("the node's log", node_with_token.log.read_text())
    stats = json.loads((cli_project / "stats.json").read_text())
    endpoints = {n["name"]: n["endpoint"] for n in stats["nodes"]}
    assert endpoints["proxy"].startswith("http://***:***@127.0.0.1:")
    assert "key=***&url={url}" in endpoints["api-dead"]

    if log_format == "console":
        fetched = [line for line in stderr.splitlines() if "[debug    ] fetched " in line]
        assert fetched
        for key in ("url=", "domain=", "node=", "attempt=", "status=", "ms="):
            assert all(key in line for line in fetched), key
        assert "distribution:" in stderr  # the final block
        assert "RuntimeError: the API refused key *** (via http://***:***@127.0.0.1:1/)" in stderr
        return

    lines = [json.loads(line) for line in stderr.splitlines()]  # every line is JSON
    for line in lines:
        assert {"timestamp", "level", "event", "logger"} <= set(line), line
        assert line["logger"].startswith(("crawlmesh", "spiders.")), line
    events = Counter(line["event"] for line in lines)
    assert set(events) >= EXPECTED_EVENTS, events
    assert lines[-1]["event"] == "crawl finished"
    assert lines[-1]["stats"]["pages"] == stats["pages"]
    raised = [line for line in lines if line["event"] == "callback raised"]
    assert len(raised) == len(shops)
    assert all("the API refused key *** (via http://***:***@" in r["exception"] for r in raised)
    assert all(line["token"] == "***" for line in lines if line["event"] == "calling home")
    about_requests = [line for line in lines if line["event"] in REQUEST_EVENTS or "url" in line]
    assert len(about_requests) > 50
    for line in about_requests:
        assert {"url", "domain", "node", "attempt"} <= set(line), line
        if line["url"] is None:  # a breaker that changed with time
            assert line["event"].startswith("circuit breaker"), line
            continue
        assert line["domain"] == urlsplit(line["url"]).hostname, line
        assert line["node"] is None or line["node"] in endpoints, line
        assert isinstance(line["attempt"], int), line
        if line["event"] in ("fetched", "retrying", "node failed; trying another"):
            assert line["node"] in endpoints, line
            assert line["attempt"] >= 1, line
    # Retries name the attempt that failed; a later attempt of the same
    # request comes with the next number.
    retried = {(line["url"], line["attempt"]) for line in lines if line["event"] == "retrying"}
    fetched_attempts = {
        (line["url"], line["attempt"]) for line in lines if line["event"] == "fetched"
    }
    assert any((url, n + 1) in fetched_attempts for url, n in retried)
    # A failure through a dead node names that node.
    dead = [line for line in lines if line["event"] == "node failed; trying another"]
    assert {line["node"] for line in dead} <= {"proxy-dead", "node-dead", "api-dead"}


def test_a_usage_error_quoting_a_setting_masks_its_credentials(
    crawlmesh_cli: Path, cli_project: Path, cli_env: dict[str, str]
) -> None:
    result = subprocess.run(
        [crawlmesh_cli, "crawl", "spiders.follow", "-s", "backend.url=http://u:s3cr3t-pw-XYZ@h/"],
        cwd=cli_project,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("crawlmesh: error: -s: setting 'backend' = ")
    assert "'http://***:***@h/'" in result.stderr
    assert_no_secret("a usage error", result.stderr)
