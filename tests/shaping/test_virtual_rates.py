"""Four domains with different limits, shaped together for 60 virtual seconds.

Each domain has more workers than its burst; every worker loops: reserve a
slot, sleep for the wait, record the start. The limiters alone set the pace,
so what they admit is what a crawl would send.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

import pytest
import trio
import trio.testing

from crawlmesh._shaping import GcraLimiter, RateRules, Rule, registered_domain

RULES: dict[str, dict[str, Any]] = {
    "*": {"rate": "50/s", "burst": 25},
    "*.shop.co.uk": {"rate": "5/s", "burst": 10},
    "example.org": {"rate": "120/m"},
    "*.github.io": {"rate": "1/10s", "burst": 2},
}
# Hosts per domain: the three shop.co.uk hosts share one budget.
HOSTS = {
    "shop.co.uk": ["shop.co.uk", "www.shop.co.uk", "img.shop.co.uk"],
    "example.org": ["example.org"],
    "alice.github.io": ["alice.github.io"],
    "example.net": ["example.net", "www.example.net"],
}
EXPECTED = {  # rate per second, burst
    "shop.co.uk": (5.0, 10),
    "example.org": (2.0, 0),
    "alice.github.io": (0.1, 2),
    "example.net": (50.0, 25),
}
DURATION = 60.0
WORKERS = 32  # per host: more than any burst, so every domain stays backlogged


async def run_crawl(hosts: dict[str, list[str]]) -> dict[str, list[float]]:
    """Start times per registered domain, in seconds from the run's start."""
    t0 = trio.current_time()
    rules = RateRules(RULES)
    limiters: dict[Rule, GcraLimiter[str]] = {}
    starts: dict[str, list[float]] = defaultdict(list)

    async def worker(host: str) -> None:
        rule = rules.for_domain(host)
        assert rule is not None
        assert rule.rate is not None
        limiter = limiters.get(rule)
        if limiter is None:
            limiter = limiters[rule] = GcraLimiter(rule.rate, rule.burst)
        key = registered_domain(host)
        while True:
            now = trio.current_time()
            wait = limiter.reserve(key, now)
            if now + wait > t0 + DURATION:
                return
            await trio.sleep(wait)
            starts[key].append(trio.current_time() - t0)

    async with trio.open_nursery() as nursery:
        for domain_hosts in hosts.values():
            for host in domain_hosts:
                for _ in range(WORKERS):
                    nursery.start_soon(worker, host)
    return starts


async def test_four_domains_each_get_their_rate_and_burst(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts = await run_crawl(HOSTS)
    assert trio.current_time() == pytest.approx(DURATION, abs=0.1)
    assert set(starts) == set(EXPECTED)
    for domain, (rate, burst) in EXPECTED.items():
        times = starts[domain]
        # The burst: exactly burst + 1 at once, then the next one interval later.
        assert times.count(0.0) == burst + 1, domain
        assert min(t for t in times if t > 0) == pytest.approx(1 / rate), domain
        # The rate, over the 60 s after the burst: within 2% (in fact exact).
        after_burst = len(times) - (burst + 1)
        assert after_burst / DURATION == pytest.approx(rate, rel=0.02), domain
        # And no second of the run goes over it (a start due at 12.0 may read
        # 11.999999999: bucket to the microsecond).
        per_second = Counter(math.floor(round(t, 6)) for t in times if t > 0)
        assert max(per_second.values()) <= math.ceil(rate), domain


async def test_a_domain_keeps_its_rate_whoever_else_is_shaped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alone = await run_crawl({"shop.co.uk": HOSTS["shop.co.uk"]})
    together = await run_crawl(HOSTS)
    assert len(alone["shop.co.uk"]) == 11 + 300
    assert together["shop.co.uk"] == pytest.approx(alone["shop.co.uk"], abs=1e-9)
