"""Registered domains from the bundled Public Suffix List."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from crawlmesh._shaping import _domains, normalize_host, registered_domain


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.com", "example.com"),
        ("www.example.com", "example.com"),
        ("a.b.example.co.uk", "example.co.uk"),
        ("example.co.uk", "example.co.uk"),
        ("co.uk", "co.uk"),  # a public suffix is its own key
        ("com", "com"),
        # Private suffixes: each user's site is its own domain.
        ("alice.github.io", "alice.github.io"),
        ("www.alice.github.io", "alice.github.io"),
        ("github.io", "github.io"),
        ("my-bucket.s3.amazonaws.com", "my-bucket.s3.amazonaws.com"),
        ("foo.blogspot.com", "foo.blogspot.com"),
        # Wildcard (*.kobe.jp) and exception (!city.kobe.jp) rules.
        ("a.b.kobe.jp", "a.b.kobe.jp"),
        ("www.city.kobe.jp", "city.kobe.jp"),
        # An unknown TLD counts as a public suffix.
        ("a.b.internal", "b.internal"),
        # Addresses and single labels come back as they are.
        ("127.0.0.1", "127.0.0.1"),
        ("192.168.1.20", "192.168.1.20"),
        ("example.123", "example.123"),
        ("::1", "::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("localhost", "localhost"),
        ("", ""),
        # One site, one key, however it is spelt.
        ("WWW.Example.COM.", "example.com"),
        ("www.bücher.de", "xn--bcher-kva.de"),
        ("www.xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("shop.例え.jp", "xn--r8jz45g.jp"),
        ("a_b.example.com", "example.com"),  # not valid IDNA, still keyed
    ],
)
def test_registered_domain(host: str, expected: str) -> None:
    assert registered_domain(host) == expected


def test_normalize_host_keeps_what_it_cannot_encode() -> None:
    assert normalize_host("Ex_ample.com.") == "ex_ample.com"
    assert normalize_host("bücher_x.de") == "bücher_x.de"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the public suffix list must not touch the network")

    _domains._suffix_list.cache_clear()
    _domains._registered.cache_clear()
    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield
    _domains._suffix_list.cache_clear()
    _domains._registered.cache_clear()


@pytest.mark.usefixtures("no_network")
def test_the_list_loads_offline() -> None:
    assert registered_domain("x.y.example.com.au") == "example.com.au"
