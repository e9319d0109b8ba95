"""Timing helpers shared by the micro-benchmarks in bench/."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["per_call_us"]


def per_call_us(calls: Callable[[int], None], *, budget: float = 0.2) -> float:
    """Best of three runs of ``calls(k)``, with k grown until a run takes ``budget`` s."""
    k = 1
    while True:
        start = time.perf_counter()
        calls(k)
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            break
        k = max(2 * k, int(k * 1.2 * budget / max(elapsed, 1e-6)))
    for _ in range(2):
        start = time.perf_counter()
        calls(k)
        elapsed = min(elapsed, time.perf_counter() - start)
    return elapsed / k * 1e6
