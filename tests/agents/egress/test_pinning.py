"""DNS pinning: a request connects to the address the guard approved, and to no other.

The receiver listens on 127.0.0.1 only, and names under ``.test`` never resolve, so a request
that reaches it for ``hooks.example.test`` can only have been dialled at the pinned address.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest

from agents.egress.pinning import (
    PinnedBackend,
    PinnedTransport,
    UnpinnedRequest,
    WebhookClient,
)
from agents.egress.ssrf import Destination
from agents.notify.schedule import RetrySchedule
from agents.notify.sender import (
    StepKind,
    WebhookOutcome,
    attempt_once,
    deliver,
    send_once,
)
from agents.notify.signing import signed_headers
from schemas.webhook_event import event_payload
from tests.support.local_ca import LocalCA
from tests.support.webhook_receiver import SECRET, Answer, Receiver, make_completion

NAME = "hooks.example.test"
ALLOW = ["127.0.0.1"]  # the address, not the name: the name must still be resolved and checked
FAST = RetrySchedule(delays=(0, 0.01, 0.01), jitter=0)


class Answers:
    """A resolver that gives its scripted answers in turn (the last one repeats)."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self._answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append((host, port))
        return self._answers[min(len(self.calls), len(self._answers)) - 1]


class Dialled(httpcore.AsyncNetworkBackend):
    """The real network backend, recording every ``(host, port)`` it is asked to dial."""

    def __init__(self) -> None:
        self.hosts: list[tuple[str, int]] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.hosts.append((host, port))
        return await self._real.connect_tcp(host, port, timeout, local_address, socket_options)


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host the process asks the system resolver about during the test."""
    seen: list[str] = []
    real = socket.getaddrinfo

    def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(host.decode() if isinstance(host, bytes) else str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    return seen


async def _send(
    url: str, resolver: Answers, dialled: Dialled | None = None, attempts: int = 1
) -> list[StepKind]:
    transport = PinnedTransport(network_backend=dialled)
    body = event_payload(make_completion())
    kinds: list[StepKind] = []
    async with WebhookClient(transport) as client:
        for attempt in range(1, attempts + 1):
            step = await attempt_once(
                client, url, SECRET, "msg_pin", body, attempt, FAST, ALLOW, resolver=resolver
            )
            kinds.append(step.kind)
    return kinds


def test_a_name_is_sent_to_its_checked_address_with_its_own_host_header(
    receiver: Receiver, lookups: list[str]
) -> None:
    resolver = Answers(["127.0.0.1"])
    url = f"http://{NAME}:{receiver.port}/hook?token=t0k"
    assert asyncio.run(_send(url, resolver)) == [StepKind.DELIVERED]
    (seen,) = receiver.received
    assert seen.verified
    assert seen.path == "/hook"
    assert seen.headers["host"] == f"{NAME}:{receiver.port}"
    assert resolver.calls == [(NAME, receiver.port)]
    assert NAME not in lookups  # httpx did not resolve the name again


def test_a_rebinding_answer_after_the_check_cannot_move_the_connection(receiver: Receiver) -> None:
    # 1st answer (checked): allowed; any later lookup would give a blocked address
    resolver = Answers(["127.0.0.1"], ["10.0.0.1"])
    dialled = Dialled()
    url = f"http://{NAME}:{receiver.port}/hook"
    assert asyncio.run(_send(url, resolver, dialled)) == [StepKind.DELIVERED]
    assert len(resolver.calls) == 1  # resolved once, by the guard
    assert dialled.hosts == [("127.0.0.1", receiver.port)]
    assert len(receiver.received) == 1


def test_each_attempt_connects_only_where_its_own_check_allowed(receiver: Receiver) -> None:
    receiver.script(Answer(503))
    resolver = Answers(["127.0.0.1"], ["169.254.169.254"])
    dialled = Dialled()
    url = f"http://{NAME}:{receiver.port}/hook"
    kinds = asyncio.run(_send(url, resolver, dialled, attempts=2))
    assert kinds == [StepKind.RETRY, StepKind.REFUSED]
    assert dialled.hosts == [("127.0.0.1", receiver.port)]  # nothing dialled for attempt 2
    assert len(receiver.received) == 1


def test_deliver_pins_every_attempt(receiver: Receiver, lookups: list[str]) -> None:
    receiver.script(Answer(503))
    resolver = Answers(["127.0.0.1"])

    async def go() -> WebhookOutcome:
        async with WebhookClient() as client:
            return await deliver(
                client,
                f"http://{NAME}:{receiver.port}/hook",
                SECRET,
                make_completion(),
                FAST,
                ALLOW,
                asyncio.sleep,
                resolver=resolver,
            )

    outcome = asyncio.run(go())
    assert (outcome.delivered, outcome.attempts) == (True, 2)
    assert len(resolver.calls) == 2  # the guard ran before each attempt
    assert {seen.headers["host"] for seen in receiver.received} == {f"{NAME}:{receiver.port}"}
    assert NAME not in lookups


def test_tls_uses_the_name_for_sni_and_certificate_checks(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path, NAME)
    server = Receiver(ssl_context=ca.server_context()).start()
    try:
        body = event_payload(make_completion())

        async def post(host: str) -> Any:
            url = f"https://{host}:{server.port}/hook"
            destination = Destination(url, host, server.port, ("127.0.0.1",))
            transport = PinnedTransport(ssl_context=ca.client_context())
            async with WebhookClient(transport) as client:
                headers = signed_headers(SECRET, "m", datetime.now(UTC), body)
                return await send_once(client, destination, body, headers, 5.0)

        delivered = asyncio.run(post(NAME))
        assert delivered.status == 204
        assert ca.sni_seen == [NAME]
        (seen,) = server.received
        assert seen.headers["host"] == f"{NAME}:{server.port}"

        # same address, a name the certificate does not cover: verification must fail
        refused = asyncio.run(post("other.example.test"))
        assert refused.status is None
        assert refused.error_code == "webhook.connect"
        assert len(server.received) == 1
    finally:
        server.stop()


def test_the_transport_refuses_requests_the_guard_did_not_approve(receiver: Receiver) -> None:
    url = f"{receiver.url}/hook"

    async def go() -> None:
        async with httpx.AsyncClient(transport=PinnedTransport(), trust_env=False) as client:
            with pytest.raises(UnpinnedRequest):
                await client.post(url, content=b"{}")
            other = Destination(f"{receiver.url}/other", "127.0.0.1", receiver.port, ("127.0.0.1",))
            with pytest.raises(UnpinnedRequest):
                await client.post(url, content=b"{}", extensions={"assetline.destination": other})

    asyncio.run(go())
    assert receiver.received == []


def test_pools_are_per_origin_and_addresses_and_idle_ones_are_evicted(
    receiver: Receiver,
) -> None:
    transport = PinnedTransport(max_pools=2)
    body = event_payload(make_completion())
    headers = signed_headers(SECRET, "m", datetime.now(UTC), body)
    port = receiver.port

    def at(host: str, *addresses: str) -> Destination:
        return Destination(f"http://{host}:{port}/hook", host, port, addresses)

    async def go() -> list[list[Any]]:
        keys: list[list[Any]] = []
        async with WebhookClient(transport) as client:
            for destination in (
                at(NAME, "127.0.0.1"),
                at(NAME, "127.0.0.1"),  # same name, same answer: the same pool
                at(NAME, "::1", "127.0.0.1"),  # another answer: its own pool
                at("other.example.test", "127.0.0.1"),  # a third pool evicts the oldest
            ):
                result = await send_once(client, destination, body, headers, 5.0)
                assert result.status == 204
                keys.append([(host.decode(), addrs) for _, host, _, addrs in transport.pool_keys])
        return keys

    keys = asyncio.run(go())
    assert keys == [
        [(NAME, ("127.0.0.1",))],
        [(NAME, ("127.0.0.1",))],
        [(NAME, ("127.0.0.1",)), (NAME, ("::1", "127.0.0.1"))],
        [(NAME, ("::1", "127.0.0.1")), ("other.example.test", ("127.0.0.1",))],
    ]
    assert len(receiver.received) == 4


class Scripted(httpcore.AsyncNetworkBackend):
    """Refuses the addresses in ``refuse``; 'connects' to any other by returning a stream."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.hosts: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        if host in self.refuse:
            raise httpcore.ConnectError(f"refused {host}")
        return httpcore.AsyncMockStream([])


def test_backend_tries_approved_addresses_in_order_and_never_the_name() -> None:
    pinned = Destination(f"https://{NAME}/", NAME, 443, ("2001:db8::1", "203.0.113.7"))

    inner = Scripted(refuse={"2001:db8::1"})
    asyncio.run(PinnedBackend(pinned, inner).connect_tcp(NAME, 443, timeout=5))
    assert inner.hosts == ["2001:db8::1", "203.0.113.7"]

    inner = Scripted(refuse={"2001:db8::1", "203.0.113.7"})
    with pytest.raises(httpcore.ConnectError, match=r"refused 203\.0\.113\.7"):
        asyncio.run(PinnedBackend(pinned, inner).connect_tcp(NAME, 443, timeout=5))
    assert inner.hosts == ["2001:db8::1", "203.0.113.7"]

    inner = Scripted(refuse=set())
    with pytest.raises(httpcore.ConnectTimeout):
        asyncio.run(PinnedBackend(pinned, inner).connect_tcp(NAME, 443, timeout=0))
    assert inner.hosts == []  # no time left: nothing dialled


def test_backend_dials_an_allow_listed_name_by_name() -> None:
    trusted = Destination(f"https://{NAME}/", NAME, 443, ())
    inner = Scripted(refuse=set())
    asyncio.run(PinnedBackend(trusted, inner).connect_tcp(NAME, 443))
    assert inner.hosts == [NAME]
