"""The SSRF guard: a URL may be fetched only if it is http(s) and its host is public.

A host is public when every address it resolves to is a global unicast address (no loopback,
private, link-local, CGNAT, multicast, reserved, unspecified or cloud metadata address, also when
one hides inside an IPv6 form such as `::ffff:127.0.0.1`). The guard hands back the vetted address
so the caller connects to it rather than resolving the name again: a DNS answer that changes
between the check and the connect (DNS rebinding) cannot swap in a private address.

Tests reach their own servers on 127.0.0.1 by naming those origins in `allow_origins`, and may
inject a `resolver`; both are explicit parameters, never environment variables.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

import httpx

from agents.errors import SearchError

IPAddress = IPv4Address | IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

ALLOWED_SCHEMES = frozenset({"http", "https"})
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
# Cloud metadata and platform endpoints. Most sit in blocked ranges anyway; Azure's wire server
# (168.63.129.16) is a global address, so it is named here.
METADATA_ADDRESSES = frozenset(
    ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "168.63.129.16",
        "100.100.100.200",
    )
)
CGNAT = IPv4Network("100.64.0.0/10")
NAT64 = IPv6Network("64:ff9b::/96")


def is_public_address(address: IPAddress) -> bool:
    """Whether `address` is a global unicast address, with any IPv4 it embeds also global."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return is_public_address(address.ipv4_mapped)
    if address in METADATA_ADDRESSES or _is_special(address):
        return False
    if isinstance(address, IPv6Address):
        return all(is_public_address(inner) for inner in _embedded_ipv4(address))
    return True


def _is_special(address: IPAddress) -> bool:
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
        or (isinstance(address, IPv4Address) and address in CGNAT)
    )


def _embedded_ipv4(address: IPv6Address) -> list[IPv4Address]:
    """IPv4 addresses an IPv6 address carries (6to4, Teredo, NAT64)."""
    inner = [address.sixtofour, *(address.teredo or ())]
    if address in NAT64:
        inner.append(IPv4Address(int(address) & 0xFFFFFFFF))
    return [a for a in inner if a is not None]


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for `host` (A and AAAA)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise SearchError(f"Cannot resolve {host!r} ({exc.strerror}); check the URL.") from exc
    # Scope ids (`fe80::1%eth0`) are cut off: the address alone decides.
    return [ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


@dataclass(frozen=True)
class Target:
    """A vetted URL and the address to connect to for it."""

    url: httpx.URL
    address: IPAddress

    @property
    def connect_url(self) -> httpx.URL:
        """The URL with its host replaced by the vetted address."""
        return self.url.copy_with(host=str(self.address))

    @property
    def host_header(self) -> str:
        """The Host header the server expects: the URL's own host (and port if not default)."""
        return self.url.netloc.decode("ascii")

    @property
    def sni_hostname(self) -> str | None:
        """The name TLS must verify the certificate against; None for an IP literal host."""
        host = self.url.raw_host.decode("ascii")
        return None if _ip_literal(host) else host


def origin_of(url: str | httpx.URL) -> str:
    """`scheme://host:port` of a URL, with the scheme's default port filled in."""
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = parsed.raw_host.decode("ascii").lower()
    return f"{parsed.scheme}://{host}:{port}"


@dataclass(frozen=True)
class UrlGuard:
    """Vets URLs before any connection: scheme, host name and every resolved address."""

    allow_origins: frozenset[str] = field(default_factory=frozenset)
    resolver: Resolver = system_resolver

    @classmethod
    def allowing(cls, origins: Iterable[str], resolver: Resolver = system_resolver) -> UrlGuard:
        """A guard that also lets through these exact origins (for tests on 127.0.0.1)."""
        return cls(frozenset(origin_of(o) for o in origins), resolver)

    async def vet(self, url: str | httpx.URL) -> Target:
        """The target to connect to for `url`; raises SearchError if the URL is not allowed."""
        parsed = _parse(url)
        host = parsed.raw_host.decode("ascii").lower().rstrip(".")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        allowed = origin_of(parsed) in self.allow_origins
        if host in METADATA_HOSTS and not allowed:
            raise SearchError(f"Refused {parsed}: {host} is a cloud metadata service.")
        literal = _ip_literal(host)
        addresses = [literal] if literal else await self.resolver(host, port)
        if not addresses:
            raise SearchError(f"Cannot resolve {host!r}; check the URL.")
        private = [a for a in addresses if not is_public_address(a)]
        if private and not allowed:
            raise SearchError(
                f"Refused {parsed}: {host} resolves to the non-public address {private[0]}; "
                "the reader only fetches pages on the public internet."
            )
        return Target(parsed, addresses[0])


def _parse(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise SearchError(f"{url!s} is not a valid URL: {exc}.") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise SearchError(f"Refused {url!s}: only http and https URLs can be read.")
    if not parsed.raw_host:
        raise SearchError(f"Refused {url!s}: the URL has no host.")
    return parsed


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host.strip("[]"))
    except ValueError:
        return None
