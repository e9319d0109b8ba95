"""Retry-After (RFC 9110 section 10.2.3): how long a server asks us to wait."""

from __future__ import annotations

import calendar
import email.utils
import math
import re
import time

__all__ = ["parse_retry_after"]

# RFC 9110 allows only 1*DIGIT; a sign and decimals are accepted because
# servers send them, and a negative delay simply means "now".
_SECONDS = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
# rfc850-date, the obsolete form with a two-digit year: "Sunday, 06-Nov-94".
_RFC850_YEAR = re.compile(r"\d{1,2}-[a-z]{3}-(\d{2})\s", re.IGNORECASE)


def parse_retry_after(value: str, now_epoch: float, *, max_delay: float = 3600.0) -> float | None:
    """Seconds to wait, from a ``Retry-After`` header value.

    Both forms are understood: delay-seconds (``"120"``) and an HTTP-date in
    any of its three formats (IMF-fixdate ``Sun, 06 Nov 1994 08:49:37 GMT``,
    rfc850 ``Sunday, 06-Nov-94 08:49:37 GMT``, asctime ``Sun Nov  6 08:49:37
    1994``). A two-digit year more than 50 years ahead is read as the past
    century, as RFC 9110 requires.

    Args:
        value: the header value.
        now_epoch: the current Unix time (``time.time()``), against which a
            date is measured.
        max_delay: the longest wait returned: a server cannot park a domain
            for a year.

    Returns:
        The delay in seconds, between 0 (a date in the past, a negative
        number) and ``max_delay``; None when the value is neither form.
    """
    text = value.strip()
    if _SECONDS.fullmatch(text):
        delay = float(text)
    else:
        when = _http_date(text, now_epoch)
        if when is None:
            return None
        delay = when - now_epoch
    return min(max(delay, 0.0), max_delay)


def _http_date(text: str, now_epoch: float) -> float | None:
    parts = email.utils.parsedate_tz(text)
    if parts is None:
        return None
    year, month, day, hour, minute, second = parts[:6]
    # parsedate_tz accepts any numbers in the time of day.
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 60):
        return None
    m = _RFC850_YEAR.search(text)
    if m is not None:
        this_year = time.gmtime(now_epoch).tm_year
        year = this_year // 100 * 100 + int(m[1])
        if year > this_year + 50:
            year -= 100
    try:
        when = calendar.timegm((year, month, day, hour, minute, second))
    except (ValueError, OverflowError):
        return None
    # HTTP-dates are GMT; an explicit offset from a lax server is honoured.
    offset = parts[9] or 0
    result = float(when - offset)
    return result if math.isfinite(result) else None
