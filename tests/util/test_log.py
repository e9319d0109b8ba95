"""Logging: the JSON and console formats, the request keys, and the
redaction of secrets on every line (see tests/test_log_secrets.py for a
whole crawl)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import structlog

from crawlmesh import ErrorRecord, JsonLinesWriter, NodeSpec, Spider
from crawlmesh._settings import BackendSettings, node_token
from crawlmesh._state._redis import RedisBackend
from crawlmesh._util._log import configure_logging, debug_enabled, request_keys
from crawlmesh._util._redact import redact, redact_value, register_secret, register_url_secrets

TOKEN = "s3cr3t-unit-token-Q7"
PASSWORD = "s3cr3t-unit-p@ss/Q7"  # "@" and "/" are percent-encoded in URLs


class Stderr:
    """What the logs write to stderr (configure_logging binds the
    ``sys.stderr`` of the moment: pytest's capture, during the test)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def getvalue(self) -> str:
        return self._capsys.readouterr().err


@pytest.fixture(autouse=True)
def own_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets are registered for the life of the process: other tests' (a
    proxy user called "user", ...) must not mask what these tests expect."""
    from crawlmesh._util import _redact

    monkeypatch.setattr(_redact, "_registered", set())
    monkeypatch.setattr(_redact, "_pattern", None)


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Iterator[Stderr]:
    yield Stderr(capsys)
    configure_logging("error")


def test_registered_secrets_are_masked_raw_and_percent_encoded() -> None:
    register_secret(TOKEN)
    register_secret(PASSWORD)
    text = f"Bearer {TOKEN}; url=http://h/?p={quote(PASSWORD, safe='')}; raw {PASSWORD}"
    assert redact(text) == "Bearer ***; url=http://h/?p=***; raw ***"


def test_userinfo_and_secret_query_parameters_are_masked() -> None:
    cases = {
        "via http://user:pw@proxy:3128/x": "via http://***:***@proxy:3128/x",
        "redis://:hunter2-long@redis:6379/0": "redis://***:***@redis:6379/0",
        "http://name@h/": "http://***@h/",
        "GET https://api.example/v1/?api_key=abc123&url=x": (
            "GET https://api.example/v1/?api_key=***&url=x"
        ),
        "?token=t0k&x-api-key=k&X-Amz-Signature=sig&access_token=a&page=2": (
            "?token=***&x-api-key=***&X-Amz-Signature=***&access_token=***&page=2"
        ),
        # Not secrets: a parameter merely ending in "key", an e-mail address,
        # an instruction, a placeholder, an IPv6 host.
        "/search?monkey=1&q=key": "/search?monkey=1&q=key",
        "write to a@b.example": "write to a@b.example",
        "-s 'x': expected KEY=VALUE": "-s 'x': expected KEY=VALUE",
        "url = 'http://[user:pass@]host:port'": "url = 'http://[user:pass@]host:port'",
        "http://u:p@[::1]:80/": "http://***:***@[::1]:80/",
    }
    for text, expected in cases.items():
        assert redact(text) == expected, text
    # The errors file keeps a URL fetchable: query parameters stay there.
    assert redact("http://u:p@h/?key=v", params=False) == "http://***:***@h/?key=v"


def test_url_secrets_are_registered_from_a_url() -> None:
    register_url_secrets("http://crawler-q7:pa%3Ass-Q7-long@proxy:1/?key=k3y-Q7-long&url={url}")
    text = "auth crawler-q7 / pa:ss-Q7-long / pa%3Ass-Q7-long, key k3y-Q7-long"
    assert redact(text) == "auth *** / *** / ***, key ***"


def test_redact_value_walks_containers_and_reprs() -> None:
    register_secret(TOKEN)

    class Holder:
        def __repr__(self) -> str:
            return f"Holder({TOKEN})"

    value = {"a": [TOKEN, 1, None, (TOKEN,)], "b": Holder(), "c": 2.5}
    assert redact_value(value) == {"a": ["***", 1, None, ["***"]], "b": "Holder(***)", "c": 2.5}
    plain = object()
    assert redact_value(plain) is plain  # nothing to mask: the object itself


@pytest.mark.parametrize("json_format", [True, False], ids=["json", "console"])
def test_every_line_is_redacted_exception_text_included(stderr: Stderr, json_format: bool) -> None:
    register_secret(TOKEN)
    configure_logging("debug", json=json_format)
    log = structlog.get_logger("crawlmesh.test")
    log.info(f"event naming {TOKEN}", proxy="http://user:pw@proxy:1/", items=[TOKEN])
    try:
        raise RuntimeError(f"refused with token {TOKEN}")
    except RuntimeError as exc:
        log.error("it failed", exc_info=exc)
    log.exception("again", error=ValueError(TOKEN))
    text = stderr.getvalue()
    assert TOKEN not in text
    assert "user:pw" not in text
    assert "refused with token ***" in text  # the traceback is there, masked
    assert "http://***:***@proxy:1/" in text


def test_json_lines_carry_timestamp_level_event_and_logger(stderr: Stderr) -> None:
    configure_logging("info", json=True)
    structlog.get_logger("crawlmesh.engine").warning(
        "request failed", **request_keys("http://a.example:8/x", node="n1", attempt=2)
    )
    structlog.get_logger().info("no name given")
    structlog.get_logger("crawlmesh.engine").debug("below the level")
    lines = [json.loads(line) for line in stderr.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert {"timestamp", "level", "event", "logger"} <= set(first)
    assert first["level"] == "warning"
    assert first["logger"] == "crawlmesh.engine"
    assert first["timestamp"].endswith("Z")
    assert (first["url"], first["domain"], first["node"], first["attempt"]) == (
        "http://a.example:8/x",
        "a.example",
        "n1",
        2,
    )
    assert second["logger"] == "crawlmesh"


def test_console_lines_name_the_logger(stderr: Stderr) -> None:
    configure_logging("info")
    structlog.get_logger("crawlmesh.robots").info("hello", **request_keys("http://h/", "h"))
    line = stderr.getvalue()
    assert "[crawlmesh.robots]" in line
    assert "domain=h" in line
    assert "node=None" in line


def test_request_keys() -> None:
    assert request_keys("http://Example.COM:80/a") == {
        "url": "http://Example.COM:80/a",
        "domain": "example.com",
        "node": None,
        "attempt": None,
    }
    assert request_keys("http://[::1/", node="")["domain"] == ""  # an invalid URL
    assert request_keys(None, "d", "n", 1) == {
        "url": None,
        "domain": "d",
        "node": "n",
        "attempt": 1,
    }


def test_debug_enabled_follows_the_level(stderr: Stderr) -> None:
    configure_logging("info")
    assert not debug_enabled()
    configure_logging("debug")
    assert debug_enabled()


def test_errors_file_records_are_redacted(tmp_path: Path) -> None:
    register_secret(TOKEN)
    path = tmp_path / "errors.jsonl"
    writer = JsonLinesWriter(path)
    try:
        writer.write_error(
            ErrorRecord(
                url="http://u:pw@h/p?key=k&x=1",
                kind="connect_error",
                reason=f"via http://u:pw@proxy/ with {TOKEN}, api_key=abc refused ?api_key=abc",
                referer=f"http://h/{TOKEN}",
            )
        )
    finally:
        writer.close()
    record = json.loads(path.read_text())
    assert record["url"] == "http://***:***@h/p?key=k&x=1"
    assert (
        record["reason"] == "via http://***:***@proxy/ with ***, api_key=abc refused ?api_key=***"
    )
    assert record["referer"] == "http://h/***"


def test_the_redis_password_of_a_backend_is_registered() -> None:
    password = "s3cr3t-redis-Q7"
    RedisBackend(BackendSettings(url=f"redis://:{password}@127.0.0.1:1/0"), Spider(), concurrency=1)
    assert redact(f"AUTH failed for {password}") == "AUTH failed for ***"


def test_node_tokens_are_registered_when_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRAWLMESH_TEST_TOKEN_Q7", "s3cr3t-env-token-Q7")
    token_file = tmp_path / "token"
    token_file.write_text("# a comment\ns3cr3t-file-token-Q7\n")
    node_token(NodeSpec(name="a", kind="node", url="http://h", token_env="CRAWLMESH_TEST_TOKEN_Q7"))
    node_token(NodeSpec(name="b", kind="node", url="http://h", token_file=str(token_file)))
    assert redact("s3cr3t-env-token-Q7 s3cr3t-file-token-Q7") == "*** ***"
