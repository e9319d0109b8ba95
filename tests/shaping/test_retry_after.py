"""Retry-After in both forms (RFC 9110 section 10.2.3)."""

from __future__ import annotations

import calendar

import pytest

from crawlmesh._shaping import parse_retry_after

# Sun, 06 Nov 1994 08:49:00 GMT: 37 s before the dates below.
NOW = float(calendar.timegm((1994, 11, 6, 8, 49, 0)))


@pytest.mark.parametrize(
    ("value", "delay"),
    [
        ("120", 120.0),
        ("  7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),  # negative means now
        ("+3", 3.0),
        ("3600", 3600.0),
        ("3601", 3600.0),  # capped
        ("99999999999999999999999", 3600.0),
    ],
)
def test_delay_seconds(value: str, delay: float) -> None:
    assert parse_retry_after(value, NOW) == delay


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # rfc850-date
        "Sun Nov  6 08:49:37 1994",  # asctime-date
        "Sun, 06 Nov 1994 09:49:37 +0100",  # an offset from a lax server
    ],
)
def test_http_dates_are_exact_to_the_second(value: str) -> None:
    assert parse_retry_after(value, NOW) == 37.0
    assert parse_retry_after(value, NOW + 0.25) == 36.75
    assert parse_retry_after(value, NOW + 36) == 1.0


def test_a_date_in_the_past_means_now() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:48:00 GMT", NOW) == 0.0


def test_a_far_date_is_capped() -> None:
    assert parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT", NOW) == 3600.0
    assert parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT", NOW, max_delay=60) == 60.0
    assert parse_retry_after("600", NOW, max_delay=60) == 60.0


def test_two_digit_years_follow_the_fifty_year_rule() -> None:
    now_2026 = float(calendar.timegm((2026, 1, 1, 0, 0, 0)))
    in_2070 = float(calendar.timegm((2070, 1, 1, 0, 0, 10)))
    # 70 is 44 years ahead of 2026: 2070, not 1970 (email.utils's guess).
    assert parse_retry_after("Tuesday, 01-Jan-70 00:00:10 GMT", now_2026, max_delay=1e10) == (
        in_2070 - now_2026
    )
    # 94 would be 68 years ahead: the past century, so long past.
    assert parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now_2026) == 0.0
    assert parse_retry_after("Thursday, 01-Jan-26 00:00:30 GMT", now_2026) == 30.0


@pytest.mark.parametrize(
    "value",
    [
        "",
        "soon",
        "12abc",
        "1e3",
        "nan",
        "inf",
        "0x10",
        "1 2",
        "Sun, 06 Nov 1994",
        "Sun, 06 Nov 1994 25:00:00 GMT",
        "Sun, 06 Nov 1994 08:61:00 GMT",
    ],
)
def test_garbage_is_none(value: str) -> None:
    assert parse_retry_after(value, NOW) is None
