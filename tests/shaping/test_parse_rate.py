"""Rate strings: "5/s", "300/m", "1/10s"."""

from __future__ import annotations

import pytest

from crawlmesh._shaping import parse_rate


@pytest.mark.parametrize(
    ("text", "per_second"),
    [
        ("5/s", 5.0),
        ("300/m", 5.0),
        ("1/10s", 0.1),
        ("2r/s", 2.0),  # NGINX's spelling
        ("30r/m", 0.5),
        ("3600/h", 1.0),
        ("86400/d", 1.0),
        (" 1.5 / 2 min ", 0.0125),
        ("1/0.5s", 2.0),
        (".5/s", 0.5),
        ("10/Minutes", 10 / 60),
        ("1/2hours", 1 / 7200),
    ],
)
def test_rates(text: str, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second, rel=1e-15)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"invalid rate '': expected COUNT/PERIOD, such as '5/s'"),
        ("5", r"invalid rate '5': expected COUNT/PERIOD"),
        ("five/s", r"invalid rate 'five/s': expected COUNT/PERIOD"),
        ("-5/s", r"invalid rate '-5/s': expected COUNT/PERIOD"),
        ("5/s/s", r"invalid rate '5/s/s': expected COUNT/PERIOD"),
        ("5/x", r"invalid rate '5/x': unknown unit 'x' \(use s, m, h or d\)"),
        ("5/ms", r"invalid rate '5/ms': unknown unit 'ms'"),
        ("5/", r"invalid rate '5/': no unit \(use s, m, h or d\)"),
        ("5/10", r"invalid rate '5/10': no unit"),
        ("0/s", r"invalid rate '0/s': the count must be more than 0"),
        ("5/0s", r"invalid rate '5/0s': the period must be more than 0"),
    ],
)
def test_bad_rates_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        parse_rate(text)
