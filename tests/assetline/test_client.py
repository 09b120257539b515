"""LineClient.submit's back-pressure and failure handling, with a fake producer (no broker)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from assetline.client import LineClient, SubmitError, latest_completion
from schemas.records import AssetCompleted, AssetKind, CompletionStatus, GenerationRequest
from streams.settings import Settings
from streams.signing import producer_signed, sign_request
from streams.trace_context import TRACEPARENT, extract, without_trace


class FakeProducer:
    """Accepts sends at once; acknowledges them only when the test says so."""

    def __init__(self) -> None:
        self.unacked: list[asyncio.Future[object]] = []
        self.sent: list[bytes] = []
        self.records: list[tuple[bytes, list[tuple[str, bytes]] | None]] = []
        self.max_unacked = 0

    async def send(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.unacked.append(future)
        self.sent.append(key)
        self.records.append((value, headers))
        self.max_unacked = max(self.max_unacked, sum(not f.done() for f in self.unacked))
        return future

    def ack_all(self, error: BaseException | None = None) -> int:
        count = 0
        for future in self.unacked:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
                count += 1
        return count


def requests(n: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            request_id=f"r{i}",
            idempotency_key=f"r{i}",
            tenant="t",
            campaign_id="c",
            kind=AssetKind.TEXT,
            prompt_template="hi",
        )
        for i in range(n)
    ]


def client_with(
    fake: FakeProducer, max_in_flight: int, settings: Settings | None = None, **kw: Any
) -> LineClient:
    settings = settings or Settings(topic_prefix="unit")
    client = LineClient(settings, max_in_flight=max_in_flight, **kw)
    client._producer = fake  # type: ignore[assignment]
    return client


async def _acker(fake: FakeProducer, stop: asyncio.Event) -> int:
    acked = 0
    while not stop.is_set():
        await asyncio.sleep(0)
        acked += fake.ack_all()
    return acked


def test_submit_never_holds_more_than_max_in_flight_unacknowledged() -> None:
    async def go() -> tuple[int, FakeProducer, list[int]]:
        fake = FakeProducer()
        client = client_with(fake, max_in_flight=8)
        stop = asyncio.Event()
        acker = asyncio.create_task(_acker(fake, stop))
        acked: list[int] = []
        sent = await client.submit(requests(100), on_acked=acked.append)
        stop.set()
        await acker
        return sent, fake, acked

    sent, fake, acked = asyncio.run(go())
    assert sent == 100
    assert len(fake.sent) == 100
    assert sum(acked) == 100
    assert 1 <= fake.max_unacked <= 8
    assert fake.max_unacked == 8  # the bound was reached, so it is what held sends back


def test_a_failed_acknowledgement_raises_submit_error_and_stops_sending() -> None:
    async def go() -> tuple[FakeProducer, SubmitError]:
        fake = FakeProducer()
        client = client_with(fake, max_in_flight=4)
        original = fake.send

        async def send_then_fail(
            topic: str, key: bytes, value: bytes, headers: Any = None
        ) -> asyncio.Future[object]:
            future = await original(topic, key, value, headers)
            if len(fake.unacked) >= 4:  # the window is full: the broker rejects from now on
                asyncio.get_running_loop().call_soon(fake.ack_all, RuntimeError("broker said no"))
            return future

        fake.send = send_then_fail  # type: ignore[method-assign]
        with pytest.raises(SubmitError) as caught:
            await asyncio.wait_for(client.submit(requests(50)), timeout=10)
        return fake, caught.value

    fake, error = asyncio.run(go())
    assert error.failed >= 4
    assert "broker said no" in str(error)
    assert len(fake.sent) < 50


def test_async_iterables_are_submitted_lazily() -> None:
    async def go() -> int:
        fake = FakeProducer()
        client = client_with(fake, max_in_flight=2)
        stop = asyncio.Event()
        acker = asyncio.create_task(_acker(fake, stop))

        async def stream() -> Any:
            for request in requests(10):
                yield request

        sent = await client.submit(stream())
        stop.set()
        await acker
        return sent

    assert asyncio.run(go()) == 10


def test_rate_paces_the_sends() -> None:
    async def go() -> float:
        fake = FakeProducer()
        client = client_with(fake, max_in_flight=100)
        stop = asyncio.Event()
        acker = asyncio.create_task(_acker(fake, stop))
        loop = asyncio.get_running_loop()
        started = loop.time()
        await client.submit(requests(20), rate=100.0)
        elapsed = loop.time() - started
        stop.set()
        await acker
        return elapsed

    assert asyncio.run(go()) >= 0.18  # 20 requests at 100/s take ~0.2 s


def test_max_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        LineClient(Settings(topic_prefix="unit"), max_in_flight=0)


def test_latest_completion_prefers_the_highest_attempt() -> None:
    def done(attempt: int, status: CompletionStatus) -> AssetCompleted:
        return AssetCompleted(
            request_id="r",
            idempotency_key="r",
            tenant="t",
            campaign_id="c",
            kind=AssetKind.TEXT,
            status=status,
            attempt=attempt,
        )

    events = [done(2, CompletionStatus.DELIVERED), done(1, CompletionStatus.FAILED)]
    assert latest_completion(events).status is CompletionStatus.DELIVERED


async def _submit_and_ack(
    fake: FakeProducer,
    n: int,
    settings: Settings | None = None,
    submit: dict[str, Any] | None = None,
    **kw: Any,
) -> None:
    client = client_with(fake, 8, settings, **kw)  # aiokafka wants a running loop
    stop = asyncio.Event()
    acker = asyncio.create_task(_acker(fake, stop))
    await client.submit(requests(n), **(submit or {}))
    stop.set()
    await acker


@pytest.mark.parametrize(
    ("settings", "kw"),
    [
        (Settings(topic_prefix="unit"), {"signing_secret": "acme-key"}),
        (
            Settings(
                topic_prefix="unit",
                api_keys={"acme-producer": "acme-key"},
                producer_secret_name="acme-producer",
            ),
            {},
        ),
    ],
)
def test_a_signing_client_signs_every_request_over_its_value_bytes(
    settings: Settings, kw: dict[str, Any]
) -> None:
    fake = FakeProducer()
    asyncio.run(_submit_and_ack(fake, 3, settings, **kw))
    assert len(fake.records) == 3
    for value, headers in fake.records:
        assert headers is not None
        assert without_trace(headers) == [sign_request(value, "acme-key")]
        assert producer_signed(value, headers, "acme-key")
        assert extract(headers) is not None  # the trace headers leave the signature valid


def test_without_a_key_requests_go_unsigned_and_a_missing_named_key_is_an_error() -> None:
    fake = FakeProducer()
    asyncio.run(_submit_and_ack(fake, 2))
    assert [without_trace(headers) for _, headers in fake.records] == [[], []]
    with pytest.raises(ValueError, match="'nope', which is not set"):
        LineClient(Settings(topic_prefix="unit", producer_secret_name="nope"))


def test_every_request_gets_a_trace_of_its_own_unless_the_caller_names_one() -> None:
    fake = FakeProducer()
    asyncio.run(_submit_and_ack(fake, 3))
    contexts = [extract(headers) for _, headers in fake.records]
    assert all(c is not None and c.sampled for c in contexts)
    assert len({c.trace_id for c in contexts if c is not None}) == 3

    given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    names = {"r0": given, "r1": "00-junk", "r2": None}
    fake = FakeProducer()
    asyncio.run(_submit_and_ack(fake, 3, submit={"traceparent_of": lambda r: names[r.request_id]}))
    sent = [dict(headers or [])[TRACEPARENT] for _, headers in fake.records]
    assert sent[0] == given.encode()  # the caller's span is the parent of the line's first
    assert sent[1] != b"00-junk"
    assert sent[2] != given.encode()
    assert all(extract([(TRACEPARENT, value)]) is not None for value in sent)
