from __future__ import annotations

from pathlib import Path

import pytest

from crawlmesh import SettingsError, Spider
from crawlmesh._cli import resolve_settings
from crawlmesh._settings import Settings, load_settings, parse_override


class Custom(Spider):
    custom_settings = {"concurrency": 5, "timeouts": {"read": 7}}


def test_defaults() -> None:
    s = Settings()
    assert s.concurrency == 64
    assert s.robots.obey is True
    assert s.max_response_size == 10 * 1024 * 1024
    assert (s.timeouts.connect, s.timeouts.read, s.timeouts.total) == (10.0, 30.0, 120.0)


def test_layers_apply_in_order(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text("concurrency = 2\ndepth_limit = 3\n[timeouts]\nread = 1.5\nconnect = 2\n")
    s = resolve_settings(
        Custom,
        settings_file=f,
        overrides={"timeouts.connect": "4", "robots.obey": "false"},
    )
    assert s.depth_limit == 3  # file
    assert s.concurrency == 5  # spider beats file
    assert s.timeouts.read == 7  # spider beats file
    assert s.timeouts.connect == 4.0  # -s beats file
    assert s.robots.obey is False


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"concurency": 3}, "unknown setting 'concurency' (did you mean 'concurrency'?)"),
        ({"concurrency": "abc"}, "setting 'concurrency' = 'abc': Expected int"),
        ({"concurrency": "0"}, "Expected int >= 1"),
        ({"timeouts.read": "-1"}, "setting 'timeouts.read' = '-1': Expected float > 0.0"),
        ({"timeouts.nope": 1}, "unknown setting 'timeouts.nope'"),
        ({"robots": "no"}, "setting 'robots' is a table"),
        ({"robots.obey": "maybe"}, "setting 'robots.obey' = 'maybe': Expected bool"),
        ({"log_level": "loud"}, "log_level must be one of"),
        (
            {"timeouts": {"kinds": {"socks": {"read": 5}}}},
            "timeouts.kinds: unknown node kind 'socks' (expected one of direct (a direct",
        ),
    ],
)
def test_bad_settings_name_the_key(layer: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings([("-s", layer)])
    assert message in str(info.value)
    assert str(info.value).startswith("-s: ")


def test_settings_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read settings file"):
        resolve_settings(Spider, settings_file=tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("concurrency = = 3")
    with pytest.raises(SettingsError, match="not valid TOML"):
        resolve_settings(Spider, settings_file=bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[timeouts]\nreed = 3\n")
    with pytest.raises(SettingsError, match=r"settings file .*unknown setting 'timeouts.reed'"):
        resolve_settings(Spider, settings_file=unknown)


def test_parse_override() -> None:
    assert parse_override("concurrency=3") == ("concurrency", "3")
    assert parse_override('default_headers={"X-A": "1"}') == ("default_headers", {"X-A": "1"})
    with pytest.raises(SettingsError, match="expected KEY=VALUE"):
        parse_override("concurrency")
    with pytest.raises(SettingsError, match="invalid JSON"):
        parse_override("default_headers={nope")


def test_every_profile_in_settings_dir_loads() -> None:
    profiles = sorted((Path(__file__).parents[2] / "settings").glob("*.toml"))
    assert profiles, "settings/ holds no profiles"
    for profile in profiles:
        resolve_settings(Spider, settings_file=profile)


def test_every_setting_is_documented_in_the_readme() -> None:
    from crawlmesh._settings import _known_keys

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [k for k in _known_keys() if f"| `{k}` |" not in readme]
    assert missing == []


def test_each_settings_choice_has_one_list() -> None:
    from typing import get_args

    from crawlmesh._balancer import STRATEGIES as BALANCER_STRATEGIES
    from crawlmesh._settings import DEDUPES, LOG_LEVELS, STRATEGIES, Dedupe, LogLevel, Strategy

    assert STRATEGIES == get_args(Strategy) == BALANCER_STRATEGIES
    assert STRATEGIES[0] == Settings().balancer.strategy
    assert DEDUPES == get_args(Dedupe) == ("set", "bloom")
    assert LOG_LEVELS == get_args(LogLevel) == ("debug", "info", "warning", "error")
    with pytest.raises(SettingsError, match=r"backend\.dedupe must be one of set, bloom"):
        load_settings([("-s", {"backend.dedupe": "exact"})])
    assert load_settings([("-s", {"log_level": "WARNING"})]).log_level == "WARNING"


def test_fetch_options_come_from_settings() -> None:
    from crawlmesh._settings import fetch_options

    settings = load_settings(
        [("-s", {"timeouts.connect": "3", "timeouts.read": "7", "max_redirects": "2"})]
    )
    options = fetch_options(settings)
    assert (options.connect_timeout, options.read_timeout, options.max_redirects) == (3.0, 7.0, 2)
    assert options.max_response_size == settings.max_response_size
    assert options.user_agent == settings.user_agent
    assert options.default_headers == settings.default_headers
