from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from crawlmesh import Request
from crawlmesh._frontier import FingerprintSet, MemoryFrontier


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


@given(
    st.lists(
        # Keys that share low bits (and the all-zero key) probe and wrap.
        st.one_of(
            st.binary(min_size=16, max_size=16),
            st.integers(0, 63).map(lambda n: (n << 58).to_bytes(8, "little") + bytes(8)),
        )
    )
)
def test_dupefilter_matches_a_set_of_its_64_bit_keys(fps: list[bytes]) -> None:
    d = FingerprintSet(capacity=4)  # small, so it grows several times
    seen: set[bytes] = set()
    for fp in fps:
        key = fp[:8] if any(fp[:8]) else b"\x01" + bytes(7)  # zero is stored as one
        assert d.add(fp) == (key not in seen)
        seen.add(key)
        assert fp in d
    assert len(d) == len(seen)


def test_dupefilter_holds_a_million_urls_in_packed_slots() -> None:
    d = FingerprintSet()
    for n in range(1, 1_000_001):
        d.add(n.to_bytes(8, "little") * 2)
    assert len(d) == 1_000_000
    assert d.nbytes <= 24 * 1_000_000  # 8-byte slots, at least 1/3 full
    assert (1_000_000).to_bytes(8, "little") * 2 in d
    assert (1_000_001).to_bytes(8, "little") * 2 not in d
