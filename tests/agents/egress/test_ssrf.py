"""The SSRF guard: only public destinations, unless an operator allow-listed them."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence

import pytest

from agents.egress.ssrf import (
    Destination,
    Resolver,
    UnsafeDestination,
    blocked_reason,
    check_address,
    check_destination,
)


def resolving_to(*addresses: str, calls: list[str] | None = None) -> Resolver:
    """A resolver that answers every name with ``addresses``."""

    async def resolve(host: str, port: int) -> Sequence[str]:
        if calls is not None:
            calls.append(f"{host}:{port}")
        return list(addresses)

    return resolve


def refused(
    url: str, allow: Sequence[str] = (), resolver: Resolver | None = None
) -> UnsafeDestination:
    async def run() -> None:
        if resolver is None:
            await check_destination(url, allow)
        else:
            await check_destination(url, allow, resolver)

    with pytest.raises(UnsafeDestination) as info:
        asyncio.run(run())
    return info.value


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://10.0.0.1/hook", "ssrf.blocked_address"),
        ("http://192.168.1.5/hook", "ssrf.blocked_address"),
        ("http://172.16.0.1/hook", "ssrf.blocked_address"),
        ("http://127.0.0.1:8080/hook", "ssrf.blocked_address"),
        ("http://[::1]/hook", "ssrf.blocked_address"),
        ("http://0.0.0.0/hook", "ssrf.blocked_address"),
        ("http://[::]/hook", "ssrf.blocked_address"),
        ("http://100.64.1.1/hook", "ssrf.blocked_address"),
        ("http://224.0.0.1/hook", "ssrf.blocked_address"),
        ("http://240.0.0.1/hook", "ssrf.blocked_address"),
        ("http://[fe80::1]/hook", "ssrf.blocked_address"),
        ("http://[fc00::1]/hook", "ssrf.blocked_address"),
        ("http://[::ffff:127.0.0.1]/hook", "ssrf.blocked_address"),
        ("http://[::ffff:10.1.2.3]/hook", "ssrf.blocked_address"),
        ("http://169.254.169.254/latest/meta-data/", "ssrf.metadata"),
        ("http://[fd00:ec2::254]/", "ssrf.metadata"),
        ("http://[::ffff:169.254.169.254]/", "ssrf.metadata"),
    ],
)
def test_internal_addresses_are_refused(url: str, code: str) -> None:
    assert refused(url).code == code


def test_localhost_is_refused_without_allow_list() -> None:
    error = refused("http://localhost:9/hook")
    assert error.code == "ssrf.blocked_address"
    assert "loopback" in str(error)


def test_a_name_resolving_to_loopback_is_refused_like_the_address() -> None:
    error = refused("https://hooks.customer.example/x", resolver=resolving_to("127.0.0.1"))
    assert error.code == "ssrf.blocked_address"
    assert "hooks.customer.example" in str(error)
    assert "loopback" in str(error)


def test_one_internal_address_among_public_ones_is_enough_to_refuse() -> None:
    resolver = resolving_to("93.184.216.34", "10.0.0.7")
    assert refused("https://hooks.example/x", resolver=resolver).code == "ssrf.blocked_address"


def test_a_name_resolving_to_metadata_is_refused() -> None:
    error = refused("http://metadata.internal/", resolver=resolving_to("169.254.169.254"))
    assert error.code == "ssrf.metadata"


def test_public_destinations_pass() -> None:
    calls: list[str] = []
    resolver = resolving_to("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", calls=calls)
    asyncio.run(check_destination("https://hooks.example/x", (), resolver))
    assert calls == ["hooks.example:443"]
    asyncio.run(check_destination("http://8.8.8.8:8080/x", ()))


def test_the_check_returns_exactly_the_addresses_it_approved() -> None:
    """The sender connects to these and nothing else (DNS pinning)."""
    v6 = "2606:2800:220:1:248:1893:25c8:1946"
    resolver = resolving_to("93.184.216.34", v6, "93.184.216.34")  # one per socket type
    url = "https://Hooks.Example:8443/x?token=1"
    assert asyncio.run(check_destination(url, (), resolver)) == Destination(
        url, "hooks.example", 8443, ("93.184.216.34", v6)
    )
    assert asyncio.run(check_destination("http://[::1]/h", ["::1"])).addresses == ("::1",)
    trusted = asyncio.run(check_destination("http://hooks.internal/x", ["hooks.internal"]))
    assert (trusted.addresses, trusted.pinned) == ((), False)  # trusted by name: not pinned


def test_loopback_passes_when_allow_listed() -> None:
    asyncio.run(check_destination("http://127.0.0.1:8080/hook", ["127.0.0.1"]))
    asyncio.run(check_destination("http://10.1.2.3/hook", ["10.0.0.0/8"]))
    asyncio.run(check_destination("http://[::1]/hook", ["::1"]))
    # allow-listing one address does not open its neighbours
    assert refused("http://127.0.0.2/hook", ["127.0.0.1"]).code == "ssrf.blocked_address"


def test_allow_listed_name_resolving_to_allowed_address_passes() -> None:
    resolver = resolving_to("10.0.0.7")
    asyncio.run(check_destination("http://hooks.internal/x", ["10.0.0.0/24"], resolver))
    assert refused("http://hooks.internal/x", ["10.0.1.0/24"], resolver).code == (
        "ssrf.blocked_address"
    )


def test_allow_listed_host_is_not_resolved() -> None:
    calls: list[str] = []
    resolver = resolving_to("10.0.0.7", calls=calls)
    asyncio.run(check_destination("http://Hooks.Internal./x", ["hooks.internal"], resolver))
    assert calls == []


def test_metadata_stays_refused_even_inside_an_allowed_network() -> None:
    assert refused("http://169.254.169.254/", ["169.254.0.0/16"]).code == "ssrf.metadata"
    assert refused("http://169.254.169.254/", ["169.254.169.254"]).code == "ssrf.metadata"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.com/x", "ssrf.scheme"),
        ("file:///etc/passwd", "ssrf.scheme"),
        ("gopher://example.com/", "ssrf.scheme"),
        ("https://user:pw@example.com/x", "ssrf.userinfo"),
        ("https://user@example.com/x", "ssrf.userinfo"),
        ("https:///x", "ssrf.no_host"),
        ("http://example.com:99999/", "ssrf.bad_url"),
    ],
)
def test_malformed_urls_are_refused_before_resolving(url: str, code: str) -> None:
    calls: list[str] = []
    assert refused(url, resolver=resolving_to("93.184.216.34", calls=calls)).code == code
    assert calls == []


def test_unresolvable_host_is_a_retryable_refusal() -> None:
    error = refused("http://no-such-host.invalid/", resolver=resolving_to())
    assert error.code == "ssrf.unresolvable"
    assert error.retryable
    error = refused("http://no-such-host.invalid/")  # the real resolver: .invalid never resolves
    assert error.code == "ssrf.unresolvable"
    assert error.retryable


def test_blocked_reason_names_the_category() -> None:
    assert blocked_reason(ipaddress.ip_address("100.64.0.1")) == "shared (CGNAT)"
    assert blocked_reason(ipaddress.ip_address("fe80::1%eth0")) == "link-local"
    assert blocked_reason(ipaddress.ip_address("2002:7f00:1::")) == "loopback"  # 6to4 of 127/8
    assert blocked_reason(ipaddress.ip_address("64:ff9b::a00:1")) == "private"  # NAT64 of 10/8
    assert blocked_reason(ipaddress.ip_address("1.1.1.1")) is None
    check_address(ipaddress.ip_address("1.1.1.1"))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("fec0::1", "site-local (deprecated)"),  # issue 12 #14: Python 3.11 calls it global
        ("feff:ffff::1", "site-local (deprecated)"),
        ("3fff::1", "documentation"),
        ("5f00::1", None),  # checked below: the category depends on the Python version
        ("64:ff9b:1::a00:1", None),
        ("100::1", None),
        ("2001::1", None),  # Teredo
        ("2001:db8::1", None),
        ("2620:4f:8000::1", "AS112 DNS"),
        ("::ffff:0:7f00:1", None),  # IPv4-translated
        ("192.0.0.9", "an IETF protocol assignment"),
        ("192.31.196.1", "AS112 DNS"),
        ("192.52.193.1", "AMT relay anycast"),
        ("192.88.99.1", "deprecated 6to4 relay anycast"),
        ("192.175.48.1", "AS112 DNS"),
        ("198.18.0.1", None),
        ("255.255.255.255", None),
    ],
)
def test_every_special_purpose_range_is_refused(address: str, reason: str | None) -> None:
    found = blocked_reason(ipaddress.ip_address(address))
    assert found is not None
    if reason is not None:
        assert found == reason
    assert refused(f"http://[{address}]/" if ":" in address else f"http://{address}/").code == (
        "ssrf.blocked_address"
    )


def test_a_name_resolving_to_site_local_is_refused() -> None:
    error = refused("https://hooks.customer.example/x", resolver=resolving_to("fec0::1"))
    assert error.code == "ssrf.blocked_address"
    assert "site-local" in str(error)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:82b::200e"]
)
def test_ordinary_public_addresses_still_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None
