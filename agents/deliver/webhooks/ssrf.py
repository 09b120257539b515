"""Refuse webhook URLs that point into our own network (SSRF), before every attempt.

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


class UnsafeDestination(Exception):
    """A webhook URL we will not call; ``code`` is stable, ``retryable`` only for DNS hiccups."""

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
    return next((reason for hit, reason in checks if hit), None)


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
        raise UnsafeDestination("ssrf.bad_url", "webhook URL does not parse") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeDestination("ssrf.scheme", "webhook URL must be http or https")
    if "@" in parts.netloc:
        raise UnsafeDestination("ssrf.userinfo", "webhook URL must not carry credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeDestination("ssrf.no_host", "webhook URL has no host")
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
