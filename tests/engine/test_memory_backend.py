"""The in-memory crawl is a backend like the job directory and Redis: the
same roles, and a crawl on the default backend is a crawl on an explicit
MemoryBackend."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from crawling import Crawl, run_engine, whole_site
from crawlmesh import Request, Spider
from crawlmesh._cli import open_sinks
from crawlmesh._frontier import FingerprintSet
from crawlmesh._observe import StatsCollector
from crawlmesh._settings import BackendSettings, load_settings
from crawlmesh._state import (
    Backend,
    DedupeStore,
    JobDir,
    Journal,
    Lifecycle,
    MemoryBackend,
    RequestStore,
    SharedLimits,
)
from crawlmesh._state._redis import RedisBackend
from sites import GeneratedSite

ROLES = (RequestStore, DedupeStore, Journal, SharedLimits, Lifecycle)
# Everything the one Backend protocol asked for before it was split.
BACKEND_MEMBERS = {
    "dupefilter", "shared", "mesh_share", "connect", "queued", "seen", "seen_first",
    "finished", "commit", "mark_start_done", "pause", "gate", "room", "run", "drained",
    "aclose",
}  # fmt: skip


def members(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")}


def backends(tmp_path: Path) -> list[Any]:
    spider = Spider()
    return [
        MemoryBackend(),
        JobDir(tmp_path / "job", spider),
        RedisBackend(BackendSettings(url="redis://127.0.0.1:1/0"), spider, concurrency=1),
    ]


def test_the_roles_are_small_and_together_are_the_backend() -> None:
    roles = [members(role) for role in ROLES]
    for i, role in enumerate(roles):
        assert 1 < len(role) <= 6, ROLES[i]
        for other in roles[i + 1 :]:
            assert not role & other, "a member belongs to one role"
    union = set().union(*roles)
    assert union >= BACKEND_MEMBERS
    assert union - BACKEND_MEMBERS == {"keeps_unfinished", "journals"}
    assert set(Backend.__mro__) >= set(ROLES)


def test_every_backend_plays_every_role(tmp_path: Path) -> None:
    for backend in backends(tmp_path):
        for role in ROLES:
            for name in members(role):
                declared = vars(role)[name]
                assert hasattr(backend, name), (type(backend).__name__, name)
                if inspect.iscoroutinefunction(declared):
                    assert inspect.iscoroutinefunction(getattr(backend, name)), name


def test_what_each_backend_says_it_keeps_and_shares(tmp_path: Path) -> None:
    memory, job, redis = backends(tmp_path)
    flags = [(b.keeps_unfinished, b.journals, b.shared) for b in (memory, job, redis)]
    assert flags == [(False, False, False), (True, True, False), (True, True, True)]
    assert memory.mesh_share is None
    assert job.mesh_share is None
    assert redis.mesh_share is redis


async def test_memory_backend_keeps_nothing_and_queues_locally() -> None:
    seen = FingerprintSet()
    backend = MemoryBackend(seen)
    assert backend.dupefilter is seen
    stats = StatsCollector()
    async with backend.connect(object(), stats) as resume:  # type: ignore[arg-type]
        assert not resume.resumed
        assert resume.pending == []
        assert resume.lengths == {}
        assert not resume.start_done
        request = Request("http://a.test/")
        assert backend.queued("a.test", request, b"f" * 16, seed=True)
        backend.seen(b"g" * 16)
        assert await backend.seen_first(b"h" * 16)
        assert await backend.gate("a.test", "a.test", 1.0, 1) == 0.0
        backend.pause("a.test", 5.0)
        await backend.room()
        assert backend.drained
        backend.finished(request)
        backend.commit({"o.jsonl": 10}, stats)
        backend.mark_start_done()
        await backend.run()  # nothing in the background: it returns
        assert await backend.aclose(stats, {"o.jsonl": 10}) is None
    assert len(seen) == 0  # admission adds to the dupe filter, not the backend
    assert MemoryBackend().dupefilter is not MemoryBackend().dupefilter


def test_open_sinks_without_a_jobdir_or_redis_is_in_memory(tmp_path: Path) -> None:
    settings = load_settings([])
    sinks = open_sinks(Spider(), settings, output=tmp_path / "o.jsonl", errors=None, jobdir=None)
    try:
        assert isinstance(sinks.backend, MemoryBackend)
    finally:
        sinks.close()


def skus_and_errors(crawl: Crawl) -> tuple[list[str], list[tuple[str, str]]]:
    """A whole-site crawl's SKUs and its errors' (url, kind), sorted."""
    return (
        sorted(i["sku"] for i in crawl.items),
        sorted((e["url"], e["kind"]) for e in crawl.errors),
    )


async def test_the_default_backend_crawls_as_an_explicit_memory_backend(
    generated: GeneratedSite, generated_url: str, tmp_path: Path
) -> None:
    settings = {"concurrency": 4}
    default, engine_a = await run_engine(whole_site(generated_url), tmp_path, settings)
    seen = FingerprintSet()
    explicit, engine_b = await run_engine(
        whole_site(generated_url), tmp_path, settings, backend=MemoryBackend(seen)
    )
    (items_a, errors_a), stats_a = skus_and_errors(default), default.stats
    (items_b, errors_b), stats_b = skus_and_errors(explicit), explicit.stats
    assert items_a == items_b
    assert len(items_a) == len(set(items_a)) == 667
    assert errors_a == errors_b
    assert {kind for _, kind in errors_a} == {"http_error"}
    for name in ("pages", "items", "errors", "unfinished", "finish_reason", "filtered"):
        assert getattr(stats_a, name) == getattr(stats_b, name), name
    assert stats_a.crawl_totals == stats_b.crawl_totals
    assert len(seen) >= 2000  # the crawl's dupe filter was the backend's
    assert engine_a.unfinished_where() == engine_b.unfinished_where()
    assert engine_a.unfinished_where() == "written to the errors file"


@pytest.mark.parametrize("explicit", [False, True])
async def test_the_engine_dupefilter_is_the_memory_backend_s(
    generated_url: str, tmp_path: Path, explicit: bool
) -> None:
    seen = FingerprintSet()
    spider, settings = whole_site(generated_url), {"concurrency": 4, "depth_limit": 1}
    if explicit:
        crawl, _ = await run_engine(spider, tmp_path, settings, backend=MemoryBackend(seen))
    else:
        crawl, _ = await run_engine(spider, tmp_path, settings, dupefilter=seen)
    stats = crawl.stats
    assert stats.finish_reason == "finished"
    assert len(seen) >= stats.pages > 0
