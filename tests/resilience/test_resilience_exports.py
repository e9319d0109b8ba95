"""The resilience package exports exactly its building blocks, documented."""

from __future__ import annotations

import crawlmesh._resilience as resilience

EXPECTED = {
    "DEFAULT_BODY_PATTERNS", "IDEMPOTENT_METHODS", "Ban", "BanRules", "BoardStatistics", "Breaker",
    "BreakerBoard", "BreakerConfig", "BreakerState", "BreakerStatistics", "Permit",
    "RetryBudget", "RetryBudgetStatistics", "RetryPolicy", "Transition",
}  # fmt: skip


def test_exports() -> None:
    assert set(resilience.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(resilience, name), name


def test_exported_classes_have_docstrings() -> None:
    for name in EXPECTED:
        obj = getattr(resilience, name)
        if isinstance(obj, type):
            assert obj.__doc__, name
