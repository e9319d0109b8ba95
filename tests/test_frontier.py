from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from crawlmesh import Request
from crawlmesh._frontier import MemoryDupeFilter, MemoryFrontier


def test_round_robin_across_domains_so_a_big_site_cannot_starve_others() -> None:
    f = MemoryFrontier()
    for i in range(100):
        f.push("big.test", Request(f"http://big.test/{i}"))
    f.push("small.test", Request("http://small.test/1"))
    f.push("other.test", Request("http://other.test/1"))
    first = [f.pop(lambda d: True) for _ in range(3)]
    assert {d for d, _ in first if d} == {"big.test", "small.test", "other.test"}


def test_blocked_domain_does_not_block_others() -> None:
    f = MemoryFrontier()
    f.push("a.test", Request("http://a.test/1"))
    f.push("b.test", Request("http://b.test/1"))
    got = f.pop(lambda d: d != "a.test")
    assert got is not None
    assert got[0] == "b.test"
    assert f.pop(lambda d: d != "a.test") is None
    assert len(f) == 1


def test_priority_then_fifo_within_a_domain() -> None:
    f = MemoryFrontier()
    for name, prio in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", -3)]:
        f.push("x", Request(f"http://x/{name}", priority=prio))
    order = []
    while (got := f.pop(lambda d: True)) is not None:
        order.append(got[1].url[-1])
    assert order == ["b", "d", "a", "c", "e"]


def test_drain_returns_everything() -> None:
    f = MemoryFrontier()
    for i in range(10):
        f.push(f"d{i % 3}", Request(f"http://d{i % 3}/{i}"))
    drained = list(f.drain())
    assert len(drained) == 10
    assert len(f) == 0
    assert f.pop(lambda d: True) is None


@given(st.lists(st.binary(min_size=16, max_size=16)))
def test_dupefilter_matches_a_set(fps: list[bytes]) -> None:
    d = MemoryDupeFilter()
    seen: set[bytes] = set()
    for fp in fps:
        assert d.add(fp) == (fp not in seen)
        seen.add(fp)
    assert len(d) == len(seen)
