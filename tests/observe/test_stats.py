"""The stats collector and record: the per-domain table, the distribution
check, the JSON and its schema (tests/test_cli_stats.py checks a real crawl's
file)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import jsonschema
import msgspec
import pytest
import trio

from crawlmesh import CrawlStats, NodeStats, stats_schema
from crawlmesh._observe import SCHEMA_VERSION, StatsCollector
from crawlmesh._observe._stats import NO_DOMAIN, OTHER, TOP_DOMAINS, _distribution
from crawlmesh._util._redact import register_secret


def sums_match(stats: CrawlStats) -> None:
    """Every total is the sum of the per-domain rows."""
    rows = stats.domains
    assert sum(r.pages for r in rows) == stats.pages
    assert sum(r.items for r in rows) == stats.items
    assert sum(r.bytes for r in rows) == stats.bytes_received
    assert sum(r.retries for r in rows) == stats.retries
    assert sum(r.retry_after_pauses for r in rows) == stats.retry_after_pauses
    errors: Counter[str] = Counter()
    status: Counter[str] = Counter()
    for r in rows:
        errors.update(r.errors)
        status.update(r.status)
    assert errors == Counter(stats.errors_by_kind)
    assert sum(errors.values()) == stats.errors
    by_class: Counter[str] = Counter()
    for code, n in stats.status_counts.items():
        by_class[f"{code[0]}xx"] += n
    assert status == by_class


def snapshot(stats: StatsCollector) -> CrawlStats:
    return stats.snapshot("finished")


async def test_domain_table_counts_one_row_per_domain() -> None:
    stats = StatsCollector()
    for _ in range(3):
        stats.response("a.example", 200, 100, 0.010)
    stats.response("a.example", 404, 10, 0.002)
    stats.response("b.example", 503, 5, 0.5)
    stats.item("a.example")
    stats.item("a.example")
    stats.failed("a.example", "http_error")
    stats.failed("b.example", "http_error")
    stats.failed("c.example", "connect_error")  # never answered
    stats.retried("b.example")
    stats.retries = 1
    stats.paused("b.example")
    record = snapshot(stats)
    rows = {r.domain: r for r in record.domains}
    assert [r.domain for r in record.domains] == ["a.example", "b.example", "c.example"]
    a, b, c = rows["a.example"], rows["b.example"], rows["c.example"]
    assert (a.pages, a.items, a.bytes, a.status) == (4, 2, 310, {"2xx": 3, "4xx": 1})
    assert a.errors == {"http_error": 1}
    assert a.mean_ms == pytest.approx(8.0)
    assert 10 <= a.p95_ms <= 10 * 1.19  # the top of 10 ms's bucket
    assert (b.retries, b.retry_after_pauses, b.status) == (1, 1, {"5xx": 1})
    assert 500 <= b.p95_ms <= 500 * 1.19
    assert (c.pages, c.errors) == (0, {"connect_error": 1})
    assert record.domains_seen == 3
    sums_match(record)


async def test_domains_beyond_the_top_share_the_other_row() -> None:
    stats = StatsCollector()
    for i in range(TOP_DOMAINS + 5):
        for _ in range(i + 1):  # d0 has 1 page, d104 has 105
            stats.response(f"d{i}", 200, 1, 0.001)
    stats.failed("d0", "read_timeout")
    record = snapshot(stats)
    assert len(record.domains) == TOP_DOMAINS + 1
    assert record.domains[0].domain == f"d{TOP_DOMAINS + 4}"
    other = record.domains[-1]
    assert other.domain == OTHER
    assert other.domains == 5
    assert other.pages == 1 + 2 + 3 + 4 + 5
    assert other.errors == {"read_timeout": 1}
    sums_match(record)


async def test_domains_past_the_cap_are_counted_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("crawlmesh._observe._stats._MAX_DOMAINS", 3)
    stats = StatsCollector()
    for name in ["a", "b", "c", "d", "e"]:
        stats.response(name, 200, 1, 0.001)
        stats.item(name)
    record = snapshot(stats)
    assert [r.domain for r in record.domains] == ["a", "b", "c", OTHER]
    assert (record.domains[-1].pages, record.domains[-1].items) == (2, 2)
    assert record.domains_seen == 3
    sums_match(record)


async def test_counts_of_no_domain_go_to_the_none_row() -> None:
    stats = StatsCollector()
    stats.response("a", 200, 7, 0.001)
    stats.failed("", "invalid_url")  # an unparsable link
    stats.errors["start_error"] += 1  # start() raised
    # A resumed job: the totals of earlier runs, with no domains.
    stats.pages += 10
    stats.status[200] += 10
    stats.items += 4
    record = snapshot(stats)
    none = record.domains[-1]
    assert none.domain == NO_DOMAIN
    assert (none.pages, none.items, none.status) == (10, 4, {"2xx": 10})
    assert none.errors == {"invalid_url": 1, "start_error": 1}
    sums_match(record)


async def test_no_none_row_when_every_count_has_a_domain() -> None:
    stats = StatsCollector()
    stats.response("a", 200, 7, 0.001)
    assert [r.domain for r in snapshot(stats).domains] == ["a"]


def node(name: str, weight: float, requests: int, share: float, expected: float) -> NodeStats:
    return NodeStats(
        name=name,
        kind="node",
        region="",
        weight=weight,
        state="up",
        requests=requests,
        errors={},
        bans=0,
        breaker="closed",
        share=share,
        expected_share=expected,
        p50_ms=1.0,
        p95_ms=2.0,
        in_flight=0,
        uneven=abs(share - expected) > max(0.05, expected / 4),
    )


def test_distribution_verdicts() -> None:
    even = [node("a", 3, 300, 0.5, 0.5), node("b", 3, 300, 0.5, 0.5)]
    d = _distribution(even, "weighted")
    assert (d.verdict, d.reason, d.requests) == ("ok", "", 600)
    assert [s.verdict for s in d.nodes] == ["ok", "ok"]
    assert (d.tolerance, d.tolerance_relative, d.min_requests) == (0.05, 0.25, 100)

    skewed = [node("a", 1, 450, 0.75, 0.5), node("b", 1, 150, 0.25, 0.5)]
    d = _distribution(skewed, "p2c-ewma")
    assert d.verdict == "uneven"
    assert [s.verdict for s in d.nodes] == ["uneven", "uneven"]

    assert _distribution(skewed, "round-robin").verdict == "not judged"
    few = [node("a", 1, 40, 0.8, 0.5), node("b", 1, 10, 0.2, 0.5)]
    d = _distribution(few, "weighted")
    assert d.verdict == "not judged"
    assert "50 requests" in d.reason


async def test_schema_describes_the_json_and_requires_every_field() -> None:
    schema = stats_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    stats = StatsCollector()
    stats.response("a", 200, 1, 0.001)
    record = snapshot(stats)
    data = json.loads(record.to_json())
    assert data["schema_version"] == SCHEMA_VERSION
    assert next(iter(data)) == "schema_version"
    jsonschema.validate(data, schema)
    broken = dict(data)
    del broken["domains"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "schema_version": SCHEMA_VERSION + 1}, schema)
    # The JSON decodes back into the record.
    assert msgspec.json.decode(record.to_json(), type=CrawlStats) == record


async def test_json_and_block_are_redacted() -> None:
    secret = "s3cr3t-stats-Q9"
    register_secret(secret)
    stats = StatsCollector()
    stats.failed("a", f"kind-{secret}")
    record = snapshot(stats)
    record = msgspec.structs.replace(
        record,
        nodes=[
            msgspec.structs.replace(node("p", 1, 1, 1.0, 1.0), endpoint="http://user:pass@proxy:1")
        ],
    )
    for text in (record.to_json().decode(), record.render()):
        assert secret not in text
        assert "user:pass" not in text


async def test_render_lists_the_top_domains_compactly() -> None:
    stats = StatsCollector()
    for i in range(15):
        for _ in range(20 - i):
            stats.response(f"site{i:02}.example", 200, 1, 0.004)
    stats.failed("site14.example", "read_timeout")
    block = snapshot(stats).render()
    assert "domains (15; the 10 with most pages):" in block
    assert "site00.example" in block
    assert "site10.example" not in block
    rest = next(line for line in block.splitlines() if "(5 others)" in line)
    # 5 + 4 + 3 + 2 + 1... pages of site10..site14: 10 + 9 + 8 + 7 + 6.
    assert rest.split()[2:4] == ["40", "0"]
    assert rest.split()[4] == "1"  # the error


async def test_the_rate_of_a_resumed_job_is_this_runs_pages_over_this_runs_time(
    tmp_path: Path,
) -> None:
    from crawlmesh import Spider
    from crawlmesh._state import JobDir

    class Nothing(Spider):
        name = "nothing"

    # The first run: 17982 pages, then the job is closed.
    first = StatsCollector()
    for _ in range(17982):
        first.response("a.example", 200, 1, 0.001)
    job = JobDir(tmp_path / "job", Nothing())
    job.close(first, {})

    # The rerun restores them, fetches 30 more in 2 s.
    again = StatsCollector(started=trio.current_time() - 2.0)
    JobDir(tmp_path / "job", Nothing()).restore_stats(again)
    for _ in range(30):
        again.response("a.example", 200, 1, 0.001)
    record = snapshot(again)
    assert (record.pages, record.pages_resumed) == (18012, 17982)
    assert record.pages_per_second == pytest.approx(15.0, rel=0.01)
    text = record.render()
    assert "18012 pages (15.0 pages/s)" in text
    assert "resumed: 17982 of the pages were fetched by earlier runs, 30 by this one" in text
    sums_match(record)

    # A rerun that fetches nothing has no rate.
    idle = StatsCollector(started=trio.current_time() - 0.001)
    JobDir(tmp_path / "job", Nothing()).restore_stats(idle)
    assert snapshot(idle).pages_per_second == 0.0
    assert "17982 pages (0.0 pages/s)" in snapshot(idle).render()
