"""Cost of the rate-shaping stage per request, with 10 and 10,000 active domains.

Run from the repository root::

    .venv/bin/python bench/bench_shaping.py

A request passes through three steps: ``registered_domain(host)`` (the key),
``RateRules.for_domain(host)`` (its limits) and ``GcraLimiter.reserve(key,
now)`` (its start time). Each is timed alone and then the three together, as
the stage will run them, inside ``trio.run`` so ``trio.current_time()`` is the
real clock. Each figure is the best of three timed runs of many calls
(``time.perf_counter``), in microseconds per call.

Then the paths a request really takes, with shaping and resilience on (an
unlimited rate rule for every domain, AIMD, circuit breakers) and off:

* dispatch: ``Politeness.ready/acquire/release`` and the AIMD ``observe``,
  with the breakers' gate (``Balancer.blocked_until``) when on;
* balancer: ``Balancer.acquire/release`` of a one-node mesh, with the node
  and (node, domain) breakers' permits when on.

Target: the whole stage <= 5 us per request and flat from 10 to 10,000
domains, so shaping with unlimited rates costs well under 5% of a crawl.
"""

from __future__ import annotations

import itertools
import time

import trio
from _timing import per_call_us  # bench/ is on sys.path when run as a script

from crawlmesh import Request
from crawlmesh._balancer import Balancer
from crawlmesh._resilience import BreakerConfig
from crawlmesh._settings import NodeSpec
from crawlmesh._shaping import (
    AimdController,
    GcraLimiter,
    Politeness,
    RateRules,
    Rule,
    Shaper,
    _domains,
    registered_domain,
)

SIZES = (10, 10_000)
SUFFIXES = ("com", "co.uk", "de", "github.io", "com.au", "org", "net", "fr")


def make_hosts(n: int) -> list[str]:
    """n registered domains, reached through a few hosts each."""
    return [f"www{i % 3}.site{i}.{SUFFIXES[i % len(SUFFIXES)]}" for i in range(n)]


def make_rules() -> RateRules:
    table: dict[str, dict[str, object]] = {"*": {"rate": "10/s", "burst": 5, "concurrency": 8}}
    for i in range(0, 200, 4):
        table[f"*.site{i}.{SUFFIXES[i % len(SUFFIXES)]}"] = {"rate": "5/s", "burst": 10}
        table[f"www1.site{i + 1}.{SUFFIXES[(i + 1) % len(SUFFIXES)]}"] = {"rate": "1/s"}
    return RateRules(table)


def bench(n: int) -> dict[str, float]:
    hosts = make_hosts(n)
    keys = [registered_domain(h) for h in hosts]
    rules = make_rules()
    for h in hosts:
        rules.for_domain(h)  # warm the cache, as in a running crawl
    limiter = GcraLimiter[str](rate=1e6, burst=10)  # "unlimited": never waits
    limiters: dict[Rule, GcraLimiter[str]] = {}
    now = trio.current_time

    def reserve(k: int) -> None:
        cycle = itertools.cycle(keys)
        for _ in range(k):
            limiter.reserve(next(cycle), now())

    def lookup(k: int) -> None:
        cycle = itertools.cycle(hosts)
        for _ in range(k):
            rules.for_domain(next(cycle))

    def domain(k: int) -> None:
        cycle = itertools.cycle(hosts)
        for _ in range(k):
            registered_domain(next(cycle))

    def uncached_domain(k: int) -> None:
        compute = _domains._registered.__wrapped__
        cycle = itertools.cycle(hosts)
        for _ in range(k):
            compute(next(cycle))

    def stage(k: int) -> None:
        cycle = itertools.cycle(hosts)
        for _ in range(k):
            host = next(cycle)
            rule = rules.for_domain(host)
            if rule is None or rule.rate is None:
                continue
            lim = limiters.get(rule)
            if lim is None:
                # Rates raised 1e5-fold: the cost of shaping, with no waits.
                lim = limiters[rule] = GcraLimiter(rule.rate * 1e5, rule.burst)
            lim.reserve(registered_domain(host), now())

    def dispatch(politeness: Politeness, observe: bool) -> float:
        def calls(k: int) -> None:
            cycle = itertools.cycle(hosts)
            for _ in range(k):
                host = next(cycle)
                politeness.ready(host)
                politeness.acquire(host)
                politeness.release(host)
                if observe:
                    politeness.observe(host, 0.01, pushback=False)

        return per_call_us(calls)

    def balance(balancer: Balancer) -> float:
        requests = [Request(f"http://{h}/") for h in hosts]

        def calls(k: int) -> None:
            cycle = itertools.cycle(zip(hosts, requests, strict=True))
            for _ in range(k):
                host, request = next(cycle)
                state, moved, fell_back = balancer.choose(request, host)
                lease = balancer._lease(state, host, moved, fell_back, frozenset())
                balancer.release(lease, status=200)

        return per_call_us(calls)

    unlimited = {"*": {"rate": "1000000/s", "burst": 1000}}
    mesh = [NodeSpec(name="direct")]
    with_breakers = Balancer(mesh, lambda spec: None, breakers=BreakerConfig())  # type: ignore[arg-type,return-value]
    without = Balancer(mesh, lambda spec: None)  # type: ignore[arg-type,return-value]
    shaped = Politeness(
        8,
        shaper=Shaper(unlimited),
        aimd=lambda: AimdController(8, maximum=8),
        gate=lambda host: with_breakers.blocked_until(host)[0],
    )
    return {
        "reserve()": per_call_us(reserve),
        "for_domain() cached": per_call_us(lookup),
        "registered_domain() cached": per_call_us(domain),
        "registered_domain() uncached": per_call_us(uncached_domain),
        "whole stage": per_call_us(stage),
        "dispatch path, shaping on": dispatch(shaped, observe=True),
        "dispatch path, shaping off": dispatch(Politeness(8), observe=False),
        "balancer path, breakers on": balance(with_breakers),
        "balancer path, breakers off": balance(without),
    }


def bench_churn() -> float:
    """reserve() when every call is a new key and time moves on: sweeps included."""
    limiter = GcraLimiter[int](rate=10.0, burst=2)
    counter = itertools.count()

    def calls(k: int) -> None:
        for _ in range(k):
            i = next(counter)
            limiter.reserve(i, i * 1e-3)  # 1,000 new keys a second, idle after 0.1 s

    us = per_call_us(calls)
    print(f"  (keys held after {next(counter):,} new keys: {len(limiter):,})")
    return us


async def main() -> None:
    _domains._suffix_list.cache_clear()
    start = time.perf_counter()
    registered_domain("warm.example.co.uk")
    print(f"public suffix list: loaded in {(time.perf_counter() - start) * 1e3:.0f} ms")
    results = {n: bench(n) for n in SIZES}
    names = list(results[SIZES[0]])
    print(f"\n{'us per call':32s}" + "".join(f"{f'{n:,} domains':>16s}" for n in SIZES))
    for name in names:
        print(f"{name:32s}" + "".join(f"{results[n][name]:16.3f}" for n in SIZES))
    print("\nchurn:")
    print(f"  reserve() with a new key each call: {bench_churn():.3f} us")


if __name__ == "__main__":
    trio.run(main)
