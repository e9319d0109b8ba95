"""Ban detection: block pages found, ordinary pages left alone."""

from __future__ import annotations

import msgspec
import pytest

from crawlmesh import Headers
from crawlmesh._resilience import DEFAULT_BODY_PATTERNS, Ban, BanRules

RULES = BanRules()

# Block pages as vendors serve them, trimmed to what matters.
CLOUDFLARE_BLOCK = b"""<!DOCTYPE html><html lang="en-US"><head>
<title>Attention Required! | Cloudflare</title><meta charset="UTF-8" /></head>
<body><h1>Sorry, you have been blocked</h1></body></html>"""
CLOUDFLARE_CHALLENGE = b"""<!DOCTYPE html><html><head><title>Just a moment...</title>
</head><body><script>(function(){window._cf_chl_opt={cvId: '3'};}());</script></body></html>"""
GOOGLE_SORRY = b"""<html><head><meta http-equiv="content-type" content="text/html">
<title>https://www.google.com/search?q=crawl</title></head><body><div>Our systems have
detected unusual traffic from your computer network.</div></body></html>"""
AMAZON_CAPTCHA = b"""<!doctype html><html><head><title dir="ltr">Robot Check</title>
</head><body><h4>Enter the characters you see below</h4>
<form action="/errors/validateCaptcha"></form></body></html>"""
DATADOME = b"""<html><head><title>shop.example</title></head><body><script>
var dd={'cid':'AHrlqAAA','hsh':'2211F5','t':'fe'}</script>
<script src="https://ct.captcha-delivery.com/c.js"></script></body></html>"""
PERIMETERX = b"""<html lang="en"><head><title>Access to this page has been denied.</title>
</head><body><div id="px-captcha"></div></body></html>"""
PERIMETERX_BLOCK = b"""<html><head><title>shop.example</title></head><body>
<h1>Access to this page has been denied</h1><p>Reference ID: 5d2c1</p></body></html>"""
AKAMAI = b"""<HTML><HEAD>\n<TITLE>Access Denied</TITLE>\n</HEAD><BODY>
<H1>Access Denied</H1>You don't have permission to access this server.</BODY></HTML>"""


@pytest.mark.parametrize(
    ("status", "body", "found"),
    [
        (403, CLOUDFLARE_BLOCK, "attention required"),
        (503, CLOUDFLARE_CHALLENGE, "just a moment"),
        (403, CLOUDFLARE_CHALLENGE, "just a moment"),
        (429, GOOGLE_SORRY, "unusual traffic from your"),
        (200, AMAZON_CAPTCHA, "robot check"),
        (403, DATADOME, "captcha-delivery.com"),
        (200, DATADOME, "captcha-delivery.com"),
        (403, PERIMETERX, "px-captcha"),  # the first pattern listed that matches
        (403, PERIMETERX_BLOCK, "access to this page has been denied"),
        (403, AKAMAI, "access denied"),
    ],
)
def test_block_pages_are_bans(status: int, body: bytes, found: str) -> None:
    reason = RULES.is_ban(status, body)
    assert reason is not None
    assert reason.startswith(f"status {status}, body: ")
    assert found in reason


def test_a_bare_403_is_a_ban_by_status() -> None:
    assert RULES.is_ban(403, b"<html><body>Forbidden</body></html>") == "status 403"


@pytest.mark.parametrize("status", [429, 503])
def test_a_bare_429_or_503_is_not_a_ban(status: int) -> None:
    # Push-back for the throttle and the retries, not a reason to switch node.
    assert RULES.is_ban(status, b"<html><title>Too Many Requests</title></html>") is None


def test_a_challenge_header_is_a_ban_whatever_the_body() -> None:
    headers = Headers([("Content-Type", "text/html"), ("CF-Mitigated", "Challenge")])
    assert RULES.is_ban(200, b"x" * 50_000, headers) == "header cf-mitigated"
    assert RULES.is_ban(200, b"x" * 50_000, Headers([("cf-mitigated", "none")])) is None


def test_the_reason_quotes_at_most_60_characters() -> None:
    reason = RULES.is_ban(403, b"<title>" + b"a" * 80 + b" captcha</title>")
    assert reason == "status 403, body: '<title>" + "a" * 53 + "'"


LOGIN_WITH_RECAPTCHA = b"""<!doctype html><html><head><title>Sign in - Forum</title>
<script src="https://www.google.com/recaptcha/api.js" async defer></script></head>
<body><form method="post" action="/login"><input name="user"><input name="password"
type="password"><div class="g-recaptcha" data-sitekey="6Lc_aX0UAAAAABx"></div>
<button>Sign in</button></form></body></html>"""
COMMENTS_WITH_HCAPTCHA = b"""<!doctype html><html><head><title>How we cut our build time</title>
<script src="https://js.hcaptcha.com/1/api.js"></script></head><body><article>...</article>
<form id="comment"><textarea></textarea><div class="h-captcha" data-sitekey="10000000">
</div></form></body></html>"""
ARTICLE_ABOUT_BOTS = b"""<!doctype html><html><head><title>Web scraping etiquette</title></head>
<body><p>When a site answers with a captcha or an access denied page, or says it saw
unusual traffic, slow down.</p></body></html>"""
SHOP_WITH_CF_SCRIPT = b"""<html><head><title>Blue kettle | Shop</title></head><body>
<h1>Blue kettle</h1><p class="price">29.99</p>
<script src="/cdn-cgi/challenge-platform/scripts/jsd/main.js"></script></body></html>"""
NOT_FOUND = b"<html><head><title>404 Not Found</title></head><body>Not found</body></html>"
API_JSON = b'{"items": [{"id": 1, "name": "captcha solver", "status": "access denied"}]}'


def generated_page(n: int) -> bytes:
    links = "".join(f"<a href='/p/{2 * n + i}'>link</a> " for i in range(1, 8))
    return (
        f"<html><head><title>Page {n}</title></head><body><h1 class='title'>Item {n}</h1>"
        f"<p class='price'>{n}.99</p>{links}</body></html>"
    ).encode()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, LOGIN_WITH_RECAPTCHA),
        (200, COMMENTS_WITH_HCAPTCHA),
        (200, ARTICLE_ABOUT_BOTS),
        (200, SHOP_WITH_CF_SCRIPT),
        (200, API_JSON),
        (404, NOT_FOUND),
        (500, b"<html><title>500 Internal Server Error</title></html>"),
        (301, b""),
        (200, b""),
        *[(200, generated_page(n)) for n in range(0, 2000, 97)],
    ],
)
def test_ordinary_pages_are_not_bans(status: int, body: bytes) -> None:
    assert RULES.is_ban(status, body, Headers([("Content-Type", "text/html")])) is None


def test_large_2xx_bodies_are_not_searched() -> None:
    # The gate that keeps ordinary pages cheap: a 200 over small_body_bytes
    # is content, not an interstitial.
    marker = CLOUDFLARE_CHALLENGE
    assert RULES.is_ban(200, marker + b" " * (16384 - len(marker))) is not None
    assert RULES.is_ban(200, marker + b" " * (16385 - len(marker))) is None
    assert RULES.is_ban(503, marker + b" " * 100_000) is not None  # suspect: any size


def test_only_the_start_of_a_body_is_searched() -> None:
    padding = b" " * 4096
    assert RULES.is_ban(503, padding[:-20] + b"_cf_chl_opt") is not None
    assert RULES.is_ban(503, padding + b"_cf_chl_opt") is None
    assert RULES.is_ban(403, padding + b"_cf_chl_opt") == "status 403"


def test_rules_from_settings() -> None:
    rules = msgspec.convert(
        {
            "statuses": [403, 429],
            "suspect_statuses": [403, 429, 503, 520],
            "body_patterns": [r"blocked by \w+", r"Bot\S*Protection"],
            "header_patterns": {"X-Block-Reason": "."},
            "scan_bytes": 100,
        },
        BanRules,
    )
    assert rules.is_ban(429, b"slow down") == "status 429"
    assert rules.is_ban(520, b"You were BLOCKED BY waf") == "status 520, body: 'blocked by waf'"
    # Capitals in a pattern: matched case-insensitively all the same.
    assert rules.is_ban(200, b"<p>bot-protection</p>") == "status 200, body: 'bot-protection'"
    assert rules.is_ban(200, b"", Headers([("x-block-reason", "geo")])) == "header x-block-reason"
    assert rules.is_ban(200, b"", {"x-block-reason": "geo"}) == "header x-block-reason"
    assert rules.is_ban(200, b"captcha-delivery.com") is None  # defaults replaced


def test_no_patterns_at_all() -> None:
    rules = BanRules(body_patterns=(), header_patterns={})
    assert rules.is_ban(403, CLOUDFLARE_BLOCK) == "status 403"
    assert rules.is_ban(200, AMAZON_CAPTCHA) is None


def test_default_patterns_are_lower_case_so_they_stay_fast() -> None:
    assert all(p == p.lower() for p in DEFAULT_BODY_PATTERNS)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"body_patterns": ["(unclosed"]}, r"body_patterns: '\(unclosed' is not a valid regex"),
        ({"header_patterns": {"x-a": "[z-a]"}}, r"header_patterns\['x-a'\]"),
        ({"scan_bytes": 0}, "scan_bytes"),
        ({"body_pattern": ["x"]}, "body_pattern"),
    ],
)
def test_bad_rules_fail_at_start_up(raw: dict[str, object], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(raw, BanRules)


def test_a_verdict_says_whether_the_page_itself_is_a_block() -> None:
    """A block page (a header or the body matched) is no answer for the
    spider and is retried elsewhere; a bare ban status is not a page verdict."""
    assert RULES.verdict(403, b"<p>Forbidden</p>") == Ban("status 403", page=False)
    captcha = RULES.verdict(403, b"<title>Attention Required! | Cloudflare</title>")
    assert captcha is not None
    assert captcha.page
    header = RULES.verdict(200, b"", Headers([("cf-mitigated", "challenge")]))
    assert header == Ban("header cf-mitigated", page=True)
    assert RULES.verdict(200, b"<p>fine</p>") is None
