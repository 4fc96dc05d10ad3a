"""The one guard every outgoing fetch goes through (keys, actors, objects, WebFinger, redirects, deliveries).

An ActivityPub server fetches URLs that strangers hand it (``keyId``, ``actor``, ``inbox``), so without
a guard a remote actor can make the host probe its own loopback services, the cloud metadata endpoint
(169.254.169.254) or the private network. The guard resolves the name once and checks *every* address
it resolves to, because a name with one public and one private address is a classic bypass; IPv4-mapped
IPv6 addresses (``::ffff:127.0.0.1``) are unwrapped first for the same reason.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "AddressClass",
    "BlockedDestination",
    "SsrfPolicy",
    "classify_address",
    "check_addresses",
    "check_url_syntax",
    "guard_url",
]

Resolver = Callable[[str, int], Awaitable[list[str]]]


class AddressClass(enum.StrEnum):
    """What kind of network an address belongs to, coarse enough for a policy decision."""

    PUBLIC = "public"
    LOOPBACK = "loopback"  # 127.0.0.0/8, ::1 (RFC 1122, RFC 4291)
    PRIVATE = "private"  # RFC 1918, RFC 4193 unique-local, RFC 6598 shared space
    LINK_LOCAL = "link-local"  # 169.254.0.0/16 (cloud metadata lives here), fe80::/10
    UNSPECIFIED = "unspecified"  # 0.0.0.0, :: (connects to the local host on many systems)
    MULTICAST = "multicast"
    RESERVED = "reserved"


class BlockedDestination(Exception):
    """An outgoing fetch was refused; the message says which address and why."""


@dataclass(frozen=True, slots=True)
class SsrfPolicy:
    """Which address classes outgoing fetches may reach.

    The default refuses everything but public addresses. A local fungiverse (all nodes on one
    machine) sets ``allow_loopback``; a fungiverse on a LAN sets ``allow_private``.
    """

    allow_loopback: bool = False
    allow_private: bool = False
    allowed_schemes: frozenset[str] = frozenset({"https", "http"})

    def permits(self, address_class: AddressClass) -> bool:
        if address_class is AddressClass.PUBLIC:
            return True
        if address_class is AddressClass.LOOPBACK:
            return self.allow_loopback
        if address_class is AddressClass.PRIVATE:
            return self.allow_private
        return False


_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT


def classify_address(address: str) -> AddressClass:
    """Classify one IP address literal; IPv4-mapped and 6to4-embedded IPv4 addresses are unwrapped."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return classify_address(str(ip.ipv4_mapped))
        if ip.sixtofour is not None:
            return classify_address(str(ip.sixtofour))
    if ip.is_unspecified:
        return AddressClass.UNSPECIFIED
    if ip.is_loopback:
        return AddressClass.LOOPBACK
    if ip.is_link_local:
        return AddressClass.LINK_LOCAL
    if ip.is_multicast:
        return AddressClass.MULTICAST
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_ADDRESS_SPACE:
        return AddressClass.PRIVATE
    if ip.is_private:
        return AddressClass.PRIVATE
    if ip.is_reserved or not ip.is_global:
        return AddressClass.RESERVED
    return AddressClass.PUBLIC


def check_url_syntax(url: str, policy: SsrfPolicy) -> tuple[str, int]:
    """Return ``(host, port)`` of a fetchable URL or raise :class:`BlockedDestination`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise BlockedDestination(f"malformed URL {url!r}: {error}") from error
    if parts.scheme not in policy.allowed_schemes:
        raise BlockedDestination(f"scheme {parts.scheme!r} not allowed in {url!r}")
    if not parts.hostname:
        raise BlockedDestination(f"no host in {url!r}")
    if parts.username or parts.password:
        raise BlockedDestination(f"credentials in URL {url!r}")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def check_addresses(host: str, addresses: Iterable[str], policy: SsrfPolicy) -> None:
    """Refuse when *any* resolved address is outside the policy (a mixed answer is a rebinding trick)."""
    seen = False
    for address in addresses:
        seen = True
        address_class = classify_address(address)
        if not policy.permits(address_class):
            raise BlockedDestination(f"{host} resolves to {address} ({address_class}), which is not allowed")
    if not seen:
        raise BlockedDestination(f"{host} does not resolve")


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the system resolver off the event loop."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise BlockedDestination(f"cannot resolve {host}: {error}") from error
    return sorted({str(info[4][0]) for info in infos})


async def guard_url(url: str, policy: SsrfPolicy, resolver: Resolver = system_resolver) -> None:
    """Check a URL before fetching it; raises :class:`BlockedDestination` when refused."""
    host, port = check_url_syntax(url, policy)
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        addresses = await resolver(host, port)
    else:
        addresses = [str(literal)]
    check_addresses(host, addresses, policy)
