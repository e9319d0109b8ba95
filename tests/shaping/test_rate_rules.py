"""Per-domain rules configured by glob."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import msgspec
import pytest

from crawlmesh._shaping import RateRule, RateRules, Rule

RULES: dict[str, Any] = {
    "*": {"rate": "10/s", "concurrency": 8},
    "*.example.com": {"rate": "5/s", "burst": 10, "concurrency": 4},
    "*.img.example.com": {"rate": "50/s", "burst": 20},
    "api.example.com": {"rate": "1/s"},
    "example.org": {"rate": "300/m", "per_node": True},
    "localhost": {},
    "::1": {"rate": "1000/s"},
}


@pytest.fixture
def rules() -> RateRules:
    return RateRules(RULES)


@pytest.mark.parametrize(
    ("domain", "glob"),
    [
        ("api.example.com", "api.example.com"),  # exact beats any suffix
        ("v2.api.example.com", "*.example.com"),  # exact covers only itself
        ("example.com", "*.example.com"),  # a suffix glob covers the apex
        ("www.example.com", "*.example.com"),
        ("a.b.example.com", "*.example.com"),
        ("cdn.img.example.com", "*.img.example.com"),  # the longest suffix wins
        ("img.example.com", "*.img.example.com"),
        ("example.org", "example.org"),
        ("www.example.org", "*"),
        ("notexample.com", "*"),  # a suffix match is on whole labels
        ("example.com.evil.net", "*"),
        ("localhost", "localhost"),
        ("::1", "::1"),
        ("0:0::1", "::1"),
        ("WWW.Example.COM.", "*.example.com"),
    ],
)
def test_the_most_specific_glob_wins(rules: RateRules, domain: str, glob: str) -> None:
    rule = rules.for_domain(domain)
    assert rule is not None
    assert rule.glob == glob


def test_rules_are_resolved(rules: RateRules) -> None:
    assert rules.for_domain("www.example.com") == Rule("*.example.com", 5.0, 10, 4, False)
    assert rules.for_domain("example.org") == Rule("example.org", 5.0, 0, None, True)
    # An empty rule lifts every limit, even under a "*" default.
    assert rules.for_domain("localhost") == Rule("localhost", None, 0, None, False)


def test_no_default_means_no_rule() -> None:
    rules = RateRules({"*.example.com": {"rate": "1/s"}})
    assert rules.for_domain("example.net") is None
    assert rules.for_domain("com") is None


def test_international_globs_match_either_spelling() -> None:
    rules = RateRules({"*.bücher.de": {"rate": "2/s"}})
    for host in ("www.bücher.de", "www.xn--bcher-kva.de", "xn--bcher-kva.de"):
        rule = rules.for_domain(host)
        assert rule is not None
        assert rule.glob == "*.bücher.de"


def test_lookups_are_cached_and_the_cache_is_bounded() -> None:
    rules = RateRules(RULES, cache_size=3)
    first = rules.for_domain("www.example.com")
    assert rules.for_domain("www.example.com") is first
    for i in range(10):
        rule = rules.for_domain(f"h{i}.img.example.com")
        assert rule is not None
        assert rule.glob == "*.img.example.com"
    assert len(rules._globs._cache) <= 3
    assert rules.for_domain("www.example.com") == first


def test_a_toml_table_configures_rules() -> None:
    table = tomllib.loads(
        """
        "*" = { rate = "2/s" }
        "*.example.com" = { rate = "5/s", burst = 10, concurrency = 4 }
        "shop.example.com" = { rate = "1/10s", burst = "3", per_node = true }
        """
    )
    rules = RateRules(table)
    assert rules.for_domain("shop.example.com") == Rule("shop.example.com", 0.1, 3, None, True)
    assert rules.for_domain("example.net") == Rule("*", 2.0, 0, None, False)


def test_rate_rule_structs_are_accepted_as_they_are() -> None:
    rules = RateRules({"example.com": RateRule(rate="3/s", burst=2)})
    assert rules.for_domain("example.com") == Rule("example.com", 3.0, 2, None, False)


@pytest.mark.parametrize(
    ("glob", "spec", "message"),
    [
        ("*.x.com", {"burst": -1, "rate": "1/s"}, r"burst: Expected int >= 0"),
        ("*.x.com", {"rate": "5/x"}, r"invalid rate '5/x': unknown unit 'x'"),
        ("*.x.com", {"rate": 5}, r"rate: Expected str \| null, got int"),
        ("x.com", {"rat": "5/s"}, r"unknown field 'rat' \(expected rate, burst, concurrency"),
        ("x.com", {"burst": 3}, r"burst needs a rate"),
        ("x.com", {"concurrency": 0}, r"concurrency: Expected int >= 1"),
        ("x.com", {"per_node": "maybe"}, r"per_node: Expected bool"),
        ("x.com", 5, r"expected a table of rate/burst/concurrency/per_node, got 5"),
        ("a.*.com", {}, r"expected a host name, '\*.' and a domain, or '\*'"),
        ("*.*.com", {}, r"expected a host name"),
        ("*x.com", {}, r"expected a host name"),
        (".x.com", {}, r"expected a host name"),
        ("*.", {}, r"expected a host name"),
        ("", {}, r"expected a host name"),
        ("x.com/path", {}, r"expected a host name"),
        ("x.com:8080", {}, r"expected a host name"),
    ],
)
def test_errors_name_the_glob(glob: str, spec: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^rate rule {re.escape(repr(glob))}: {message}") as info:
        RateRules({"*": {"rate": "1/s"}, glob: spec})
    assert "`" not in str(info.value)


def test_two_spellings_of_one_glob_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^rate rule 'Example.COM.': the same domains as 'ex"):
        RateRules({"example.com": {}, "Example.COM.": {"rate": "1/s"}})


def test_rate_rule_validates_on_its_own() -> None:
    with pytest.raises(msgspec.ValidationError, match="invalid rate"):
        msgspec.convert({"rate": "fast"}, RateRule)
    assert msgspec.convert({"rate": "1/s"}, RateRule) == RateRule(rate="1/s")
