"""The SSRF guard: which addresses a fetch may connect to.

A fetch service that takes URLs from clients must not become their way into
the network it runs in. :class:`AddressGuard` resolves a host itself, keeps
only the addresses it allows, connects to one of those (never resolving
again, so a DNS answer that changes between check and use gains nothing) and
checks the peer of the connected socket once more. The pool calls it for
every new connection, so each redirect hop is checked as well.

Refused by default: loopback, private (RFC 1918, ULA), link-local,
multicast, unspecified, reserved and documentation ranges, the shared
address space (RFC 6598), IPv6 site-local, and every other address IANA does
not mark globally reachable, including IPv4 addresses embedded in IPv6
(mapped, translated, compatible, 6to4, Teredo, NAT64 with either prefix).
Cloud metadata endpoints stay refused even when private addresses are
allowed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import httpx
import trio

from .._exceptions import BlockedAddress
from ._base import ClassifiedError

__all__ = ["METADATA_ADDRESSES", "AddressGuard"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure's host endpoint (wireserver)
    )
)
# IPv6 prefixes whose last 32 bits are an IPv4 address a gateway may reach.
_V4_IN_LOW_BITS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "64:ff9b::/96",  # NAT64, well-known prefix
        "64:ff9b:1::/48",  # NAT64, local-use prefix (RFC 8215)
        "::ffff:0:0:0/96",  # IPv4-translated (RFC 2765)
        "::/96",  # IPv4-compatible (deprecated)
    )
)


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's address
    if int(ip) > 1 and any(ip in net for net in _V4_IN_LOW_BITS):  # not :: or ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _category(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address, or None if it is one."""
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local):
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


class AddressGuard:
    """Decides which resolved addresses a connection may go to.

    Args:
        allow_private: allow every non-public address (loopback, private,
            link-local, ...) except cloud metadata endpoints.
        allow_networks: CIDR ranges allowed although not public (e.g. an
            internal site a node must reach); metadata endpoints excepted.

    Raises:
        ValueError: a network in ``allow_networks`` is not valid CIDR.
    """

    def __init__(self, *, allow_private: bool = False, allow_networks: Iterable[str] = ()) -> None:
        self.allow_private = allow_private
        self.allow_networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in allow_networks
        )

    def refusal(self, address: str) -> str | None:
        """Why a connection to ``address`` (an IP literal) is refused, or None."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if ip in METADATA_ADDRESSES:
            return "cloud metadata"
        if isinstance(ip, ipaddress.IPv6Address):
            inner = _embedded_v4(ip)
            if inner is not None and (why := self.refusal(str(inner))):
                return f"{why} (embedded in {ip})"
        why = _category(ip)
        if why is None or self.allow_private:
            return None
        if any(ip.version == n.version and ip in n for n in self.allow_networks):
            return None
        return why

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` a connection may use, in resolver order.

        Raises:
            httpx.ConnectError: the name does not resolve.
            ClassifiedError: every address is refused (``blocked_address``).
        """
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError) as exc:
                raise httpx.ConnectError(f"cannot resolve {host}: {exc}") from exc
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        allowed = [a for a in addresses if self.refusal(a) is None]
        if not allowed:
            reasons = ", ".join(f"{a} ({self.refusal(a)})" for a in addresses)
            raise ClassifiedError(
                f"{host} resolves only to refused addresses: {reasons}",
                error_class=BlockedAddress,
                kind="blocked_address",
                node_fault=False,
            )
        return allowed

    async def open_stream(self, host: str, port: int) -> trio.SocketStream:
        """Connect to an allowed address of ``host`` (tried in order).

        Raises:
            ClassifiedError: as :meth:`resolve`, or the connected peer is
                refused.
            httpx.ConnectError: no allowed address accepted the connection.
        """
        errors: list[str] = []
        for address in await self.resolve(host, port):
            try:
                stream = await trio.open_tcp_stream(address, port)
            except OSError as exc:
                errors.append(f"{address}: {exc}")
                continue
            self.check_peer(stream, host)
            return stream
        raise httpx.ConnectError(f"cannot connect to {host}:{port}: {'; '.join(errors)}")

    def check_peer(self, stream: trio.SocketStream, host: str) -> None:
        """Refuse a connection whose peer address is refused, closing it."""
        peer = str(stream.socket.getpeername()[0])
        why = self.refusal(peer)
        if why is not None:
            stream.socket.close()
            raise ClassifiedError(
                f"{host}: connected to a refused address {peer} ({why})",
                error_class=BlockedAddress,
                kind="blocked_address",
                node_fault=False,
            )


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None
