"""Refuse webhook URLs that point into our own network (SSRF), before every attempt.

Also used for the image URLs a provider's answer names (``providers._fetch``).
A callback URL comes from whoever sent the request, so it is untrusted: the host is resolved
and every address it resolves to must be public, unless an operator allow-listed the host,
the address or its network. Cloud metadata addresses are refused even when allow-listed.

The check returns a :class:`Destination` holding the addresses it approved, and the sender
connects to those addresses only (see ``pinning``): resolving again at connect time would let
a name answer a public address to the guard and ``127.0.0.1`` to the connection (DNS
rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from schemas.errors import AssetlineError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: ``(host, port) -> addresses``; injectable so tests can make any name resolve anywhere.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

#: Instance metadata services (AWS/GCP/Azure/OpenStack, AWS IPv6, ECS task, Alibaba).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(text)
    for text in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix embeds an IPv4

#: The IANA special-purpose registries (IPv4 and IPv6, as of 2025) plus the deprecated ranges,
#: checked by hand because ``is_global`` depends on the Python version (3.11 calls the old
#: site-local ``fec0::/10`` global). Even blocks IANA marks globally reachable are here: they
#: are anycast services (PCP, TURN, AS112 DNS sinks, AMT relays), never a webhook receiver.
SPECIAL_NETWORKS: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(net), reason)
    for net, reason in (
        ("0.0.0.0/8", "'this network'"),
        ("192.0.0.0/24", "an IETF protocol assignment"),
        ("192.0.2.0/24", "documentation"),
        ("192.31.196.0/24", "AS112 DNS"),
        ("192.52.193.0/24", "AMT relay anycast"),
        ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
        ("192.175.48.0/24", "AS112 DNS"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("240.0.0.0/4", "reserved"),
        ("255.255.255.255/32", "broadcast"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("::ffff:0:0/96", "IPv4-mapped"),
        ("::ffff:0:0:0/96", "IPv4-translated"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("100:0:0:1::/64", "dummy prefix"),
        ("2001::/23", "an IETF protocol assignment"),
        ("2001:db8::/32", "documentation"),
        ("2002::/16", "6to4"),
        ("2620:4f:8000::/48", "AS112 DNS"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "SRv6 SIDs"),
        ("fc00::/7", "unique local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)


class UnsafeDestination(AssetlineError):
    """A webhook URL we will not call; ``code`` is stable, ``retryable`` only for DNS hiccups."""

    code = "ssrf.refused"

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


@dataclass(frozen=True)
class Destination:
    """A URL the guard approved and the only addresses a connection to it may use.

    ``addresses`` are IP literals in the order the resolver gave them. It is empty only for a
    host the operator allow-listed by name: such a name is trusted, so it is not resolved by
    the guard and the connection resolves it itself.
    """

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]

    @property
    def pinned(self) -> bool:
        return bool(self.addresses)


def _unwrap(address: IPAddress) -> IPAddress:
    """The address as routed: IPv4 hidden in IPv6 (mapped, 6to4, NAT64) is that IPv4."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    address = ipaddress.IPv6Address(int(address))  # drop a zone id ("%eth0")
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination, or None when it is."""
    address = _unwrap(address)
    checks = (
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED, "shared (CGNAT)"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "not globally routable"),
    )
    hit = next((reason for blocked, reason in checks if blocked), None)
    if hit is not None:
        return hit
    return next(
        (why for net, why in SPECIAL_NETWORKS if net.version == address.version and address in net),
        None,
    )


def _parse_allow(allow: Sequence[str]) -> tuple[frozenset[str], tuple[Network, ...]]:
    hosts: set[str] = set()
    networks: list[Network] = []
    for entry in allow:
        text = entry.strip().lower().rstrip(".")
        try:
            networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
        except ValueError:
            hosts.add(text)
    return frozenset(hosts), tuple(networks)


def check_address(address: IPAddress, allow: Sequence[str] = ()) -> None:
    """Raise :class:`UnsafeDestination` unless ``address`` is public or allow-listed."""
    routed = _unwrap(address)
    if routed in METADATA_ADDRESSES:
        raise UnsafeDestination("ssrf.metadata", f"{address} is a cloud metadata address")
    reason = blocked_reason(routed)
    if reason is None:
        return
    _, networks = _parse_allow(allow)
    for candidate in {address, routed}:
        if any(candidate in net for net in networks if net.version == candidate.version):
            return
    raise UnsafeDestination("ssrf.blocked_address", f"{address} is {reason}")


def split_url(url: str) -> tuple[str, int]:
    """``(host, port)`` of an http(s) URL without userinfo; raise on anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeDestination("ssrf.bad_url", "URL does not parse") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeDestination("ssrf.scheme", "URL must be http or https")
    if "@" in parts.netloc:
        raise UnsafeDestination("ssrf.userinfo", "URL must not carry credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeDestination("ssrf.no_host", "URL has no host")
    return host, port or (443 if parts.scheme == "https" else 80)


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """Every address ``host`` resolves to, via the loop's (threaded) getaddrinfo."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeDestination(
            "ssrf.unresolvable", f"cannot resolve {host}: {exc}", retryable=True
        ) from None
    return [str(info[4][0]) for info in infos]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def check_destination(
    url: str, allow: Sequence[str] = (), resolver: Resolver = system_resolver
) -> Destination:
    """The addresses ``url`` may be reached at; raise :class:`UnsafeDestination` if any is unsafe.

    ``allow`` holds hostnames, IPs or CIDRs. An allow-listed hostname skips resolution; a
    name that resolves to a blocked address is refused exactly like that address. The host
    is resolved once: the caller must connect to the returned addresses, never re-resolve.
    """
    host, port = split_url(url)
    literal = _literal(host)
    if literal is not None:
        check_address(literal, allow)
        return Destination(url, host, port, (str(literal),))
    hosts, _ = _parse_allow(allow)
    if host.lower() in hosts:
        return Destination(url, host, port, ())
    answers = await resolver(host, port)
    if not answers:
        raise UnsafeDestination("ssrf.unresolvable", f"{host} has no address", retryable=True)
    approved: list[str] = []
    for text in answers:
        address = _literal(text)
        if address is None:
            raise UnsafeDestination("ssrf.bad_address", f"{host} resolved to {text!r}")
        try:
            check_address(address, allow)
        except UnsafeDestination as exc:
            raise UnsafeDestination(exc.code, f"{host} resolves to {exc}") from None
        if str(address) not in approved:  # getaddrinfo repeats an address per socket type
            approved.append(str(address))
    return Destination(url, host, port, tuple(approved))
