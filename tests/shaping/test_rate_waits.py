"""Rate-limit waits, as the metrics count them: in the dispatcher's
politeness (virtual time) and in real crawls over loopback (virtual time
too: loopback I/O takes none, so every wait is exactly a limit's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from crawling import Pages, run_engine
from crawlmesh import open_site_server
from crawlmesh._shaping import Politeness, Shaper
from shaping.test_engine_shaping import Recorder


def counts(p: Politeness) -> dict[str, tuple[int, float]]:
    """The reasons with waits: (count, seconds)."""
    w = p.waits
    return {r: (n, round(w.seconds[r], 6)) for r, n in w.count.items() if n}


async def test_a_delay_wait_lasts_until_the_delay_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    p = Politeness(concurrency=8, delay=1.0)
    p.acquire("a")
    p.release("a")
    await trio.sleep(0.2)
    assert not p.ready("a")  # the wait starts: the first scan that finds it held
    await trio.sleep(0.3)
    assert not p.ready("a")  # (a later scan does not restart it)
    # The dispatcher is busy elsewhere long after the delay ended: that is
    # not a wait for the delay.
    await trio.sleep(5.0)
    assert p.ready("a")
    p.acquire("a")
    assert counts(p) == {"delay": (1, 0.8)}


async def test_a_pause_is_told_from_a_delay(autojump_clock: trio.testing.MockClock) -> None:
    p = Politeness(concurrency=8, delay=1.0)
    p.acquire("a")
    p.release("a")
    p.pause("a", trio.current_time() + 5.0)  # a Retry-After, longer than the delay
    assert not p.ready("a")
    await trio.sleep(5.0)
    p.acquire("a")
    assert counts(p) == {"pause": (1, 5.0)}


async def test_an_extended_pause_lengthens_the_wait(autojump_clock: trio.testing.MockClock) -> None:
    p = Politeness(concurrency=8)
    p.pause("a", trio.current_time() + 1.0)
    assert not p.ready("a")
    await trio.sleep(0.5)
    p.pause("a", trio.current_time() + 2.0)
    assert not p.ready("a")
    await trio.sleep(3.0)
    assert p.ready("a")
    p.acquire("a")
    assert counts(p) == {"pause": (1, 2.5)}


async def test_a_rate_wait_lasts_one_interval(autojump_clock: trio.testing.MockClock) -> None:
    p = Politeness(concurrency=8, shaper=Shaper({"a.example": {"rate": "4/s"}}))
    for _ in range(3):
        assert p.ready("a.example")
        p.acquire("a.example")
        assert not p.ready("a.example")
        await trio.sleep(1.0)
    assert counts(p) == {"rate": (2, 0.5)}  # the third request has not started


async def test_waiting_for_a_concurrency_slot_is_not_a_rate_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    p = Politeness(concurrency=1)
    p.acquire("a")
    assert not p.ready("a")
    await trio.sleep(3.0)
    p.release("a")
    assert p.ready("a")
    p.acquire("a")
    assert counts(p) == {}


async def test_a_gate_notes_its_own_waits(autojump_clock: trio.testing.MockClock) -> None:
    p = Politeness(concurrency=8)
    p.note_wait("a", trio.current_time() + 2.0, "node_rate")
    await trio.sleep(0.5)
    p.note_wait("a", trio.current_time() + 1.0, "node_rate")  # still held: the same wait
    await trio.sleep(4.0)
    p.acquire("a")
    assert counts(p) == {"node_rate": (1, 1.5)}
    p.acquire("b")  # never held
    assert counts(p) == {"node_rate": (1, 1.5)}


# -- whole crawls ---------------------------------------------------------------


async def waits_of_crawl(
    tmp_path: Path, urls: list[str], **settings: Any
) -> dict[str, tuple[int, float]]:
    """The reasons a crawl of ``urls`` (each delivered) waited for: (count,
    seconds)."""
    done, engine = await run_engine(Pages(urls), tmp_path, {"robots.obey": False, **settings})
    assert done.stats.items == len(urls)
    w = engine.rate_waits
    return {r: (n, round(w.seconds[r], 3)) for r, n in w.count.items() if n}


async def test_a_crawl_counts_each_rate_wait(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    site = Recorder()
    async with open_site_server(site.handle) as base:
        port = base.rsplit(":", 1)[1]
        urls = [f"http://127.0.0.1:{port}/a{i}" for i in range(10)]
        urls += [f"http://localhost:{port}/b{i}" for i in range(10)]
        waits = await waits_of_crawl(
            tmp_path, urls, rates={"127.0.0.1": {"rate": "2/s", "burst": 3}}
        )
    # A burst of 4, then six requests each held 0.5 s; localhost never waits.
    assert waits == {"rate": (6, 3.0)}


async def test_a_crawl_counts_delay_waits(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    site = Recorder()
    async with open_site_server(site.handle) as base:
        urls = [f"{base}/p{i}" for i in range(4)]
        waits = await waits_of_crawl(tmp_path, urls, download_delay=1.5)
    assert waits == {"delay": (3, 4.5)}


async def test_a_crawl_counts_a_retry_after_pause(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    site = Recorder(throttle_first="7")
    async with open_site_server(site.handle) as base:
        urls = [f"{base}/p{i}" for i in range(4)]
        waits = await waits_of_crawl(tmp_path, urls, concurrency_per_domain=1)
    # The other pages waited out the pause (the retry waited in the retrier).
    assert waits == {"pause": (1, 7.0)}


async def test_a_crawl_counts_per_node_rate_waits(
    tmp_path: Path, loopback_clock: trio.testing.MockClock
) -> None:
    site = Recorder()
    nodes = [{"name": "a", "kind": "direct"}, {"name": "b", "kind": "direct"}]
    async with open_site_server(site.handle) as base:
        waits = await waits_of_crawl(
            tmp_path,
            [f"{base}/p{i}" for i in range(6)],
            nodes=nodes,
            rates={"127.0.0.1": {"rate": "1/s", "per_node": True}},
        )
    starts = sorted(round(t - site.log[0][2], 3) for _, _, t in site.log)
    assert starts == [0, 0, 1, 1, 2, 2]  # two nodes, one request a second each
    count, seconds = waits["node_rate"]
    assert set(waits) == {"node_rate"}
    # Each wait ends when a node's next slot comes, a second after the last.
    assert 2 <= count <= 4
    assert seconds == pytest.approx(count * 1.0)
