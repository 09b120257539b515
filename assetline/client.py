"""Submit requests to the line and wait for their completions: the Python producer SDK.

Other Python services (and the CLI, demo and benches) use :class:`LineClient`::

    async with LineClient(settings) as client:
        await client.submit(requests)                   # bounded in-flight, returns count
        done = await client.await_completions(ids, timeout=60)

A tenant whose tenants-file entry has a ``producer_secret`` passes that secret as
``LineClient(settings, signing_secret=...)`` (or names it in ``ASSETLINE_PRODUCER_SECRET_NAME``,
which the CLI's submit/campaign/demo commands use too): every request is then signed
(:func:`streams.signing.sign_request`, header ``assetline-signature``).

Every request is sent with a W3C ``traceparent`` header (streams/trace_context.py): the
caller's, given per request as ``submit(..., traceparent_of=...)`` (say, from the caller's own
tracer, so the line's spans join its trace), or a new trace per request. The line keeps that
trace id on every record it writes for the request.

Sends are asynchronous: ``submit`` keeps at most ``max_in_flight`` unacknowledged messages,
so submitting 100k requests holds a bounded number of futures (and of encoded bytes) instead
of one per request, and a slow broker slows the caller down instead of growing memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Callable, Iterable
from types import TracebackType

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.errors import AssetlineError
from schemas.records import AssetCompleted, GenerationRequest
from streams.codecs import CodecError, Codecs
from streams.kafka import open_topic_reader
from streams.kafka_security import client_kwargs, start_client
from streams.settings import Settings
from streams.signing import sign_request
from streams.topics import TopicNames
from streams.trace_context import new_trace, parse_traceparent

#: Unacknowledged sends allowed at once; enough to fill many batches, few enough to stay small.
DEFAULT_MAX_IN_FLIGHT = 4096


class SubmitError(AssetlineError):
    """Some requests were not acknowledged by the broker; ``failed`` says how many."""

    code = "submit.not_acknowledged"

    def __init__(self, failed: int, sent: int, first: BaseException) -> None:
        super().__init__(f"{failed} of {sent} request(s) were not acknowledged: {first}")
        self.failed = failed
        self.sent = sent


def _configured_signing_secret(settings: Settings) -> str | None:
    """The key named by ``producer_secret_name``; a name that is not set is an error, not a
    silently unsigned stream of requests the line would dead-letter."""
    name = settings.producer_secret_name
    if name is None:
        return None
    secret = settings.api_keys.get(name)
    if secret is None:
        raise ValueError(
            f"ASSETLINE_PRODUCER_SECRET_NAME names {name!r}, which is not set in ASSETLINE_API_KEYS"
        )
    return secret.get_secret_value()


def latest_completion(events: Iterable[AssetCompleted]) -> AssetCompleted:
    """The completion that counts when a request has several (replays add later attempts)."""
    return max(events, key=lambda e: (e.attempt, e.completed_at))


class LineClient:
    """A producer of requests and a reader of completions for one line.

    Use it as ``async with LineClient(settings) as client``. Requests are keyed by
    ``request_id``, acknowledged by all in-sync replicas, and sent idempotently, so a retried
    send never duplicates a request on the topic; resubmitting the same ``request_id`` is safe
    too, since the line's ledger keeps one completion per request and attempt.
    """

    def __init__(
        self,
        settings: Settings,
        codecs: Codecs | None = None,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        linger_ms: int | None = None,
        signing_secret: str | bytes | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.settings = settings
        self.codecs = codecs or Codecs.load()
        self.topics = TopicNames.with_prefix(settings.topic_prefix)
        self.max_in_flight = max_in_flight
        self._signing_secret = signing_secret or _configured_signing_secret(settings)
        self._slots = asyncio.Semaphore(max_in_flight)
        # No compression: requests are small and CPU, not bandwidth, bounds a 2-core producer.
        self._producer = AIOKafkaProducer(
            **client_kwargs(settings),
            linger_ms=settings.producer_linger_ms if linger_ms is None else linger_ms,
            max_batch_size=512 * 1024,
            acks="all",
            enable_idempotence=True,
            max_request_size=settings.max_message_bytes,  # the topics' max.message.bytes
        )

    async def __aenter__(self) -> LineClient:
        # a wrong password or certificate is one KafkaUnreachable line, not a retry loop
        await start_client(self._producer, self.settings)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def submit(
        self,
        requests: Iterable[GenerationRequest] | AsyncIterable[GenerationRequest],
        *,
        rate: float | None = None,
        on_acked: Callable[[int], None] | None = None,
        traceparent_of: Callable[[GenerationRequest], str | None] | None = None,
    ) -> int:
        """Publish requests keyed by request_id; returns how many were acknowledged.

        ``requests`` may be any (async) iterable, consumed lazily: only ``max_in_flight``
        sends are unacknowledged at once, shared by concurrent ``submit`` calls on this
        client. ``rate`` caps the pace in requests per second (None = as fast as the broker
        takes them); ``on_acked(1)`` runs as each send is acknowledged (a progress bar).
        Raises :class:`SubmitError` after the last send when any was not acknowledged;
        sending stops at the first failure seen. ``traceparent_of(request)`` names the trace a
        request belongs to (a W3C ``traceparent``); None or an invalid one starts a new trace.
        """
        failures: list[BaseException] = []
        pending: set[asyncio.Future[object]] = set()
        sent = 0
        started = time.monotonic()

        def acked(future: asyncio.Future[object]) -> None:
            pending.discard(future)
            self._slots.release()
            if future.cancelled():
                failures.append(asyncio.CancelledError("send cancelled"))
            elif (error := future.exception()) is not None:
                failures.append(error)
            elif on_acked is not None:
                on_acked(1)

        async def send(request: GenerationRequest) -> None:
            nonlocal sent
            await self._slots.acquire()
            try:
                value = self.codecs.request.encode(request)
                given = traceparent_of(request) if traceparent_of is not None else None
                future = await self._producer.send(
                    self.topics.requests_for(request.priority),  # HIGH: its own intake
                    key=request.request_id.encode("utf-8"),
                    value=value,
                    headers=self._headers(value, given),
                )
            except BaseException:
                self._slots.release()
                raise
            pending.add(future)
            future.add_done_callback(acked)
            sent += 1
            if rate is not None:
                ahead = started + sent / rate - time.monotonic()
                if ahead > 0.005:
                    await asyncio.sleep(ahead)

        try:
            if isinstance(requests, AsyncIterable):
                async for request in requests:
                    if failures:
                        break
                    await send(request)
            else:
                for request in requests:
                    if failures:
                        break
                    await send(request)
        finally:
            if pending:
                await asyncio.wait(set(pending))
        if failures:
            raise SubmitError(len(failures), sent, failures[0]) from failures[0]
        return sent

    def _headers(self, value: bytes, traceparent: str | None) -> list[tuple[str, bytes]]:
        """The trace context (the caller's if valid, else new), and the signature if any."""
        trace = parse_traceparent(traceparent) or new_trace()
        headers = trace.headers()
        if self._signing_secret is not None:
            headers.append(sign_request(value, self._signing_secret))
        return headers

    async def submit_one(
        self, request: GenerationRequest, *, traceparent: str | None = None
    ) -> None:
        """Publish one request and wait until the broker acknowledged it."""
        await self.submit([request], traceparent_of=lambda _: traceparent)

    async def await_completion(self, request_id: str, timeout: float) -> AssetCompleted:
        """The completion of one request; raises :class:`TimeoutError` after ``timeout`` s."""
        done = await self.await_completions([request_id], timeout)
        if request_id not in done:
            raise TimeoutError(f"no completion for {request_id} within {timeout:g}s")
        return done[request_id]

    async def await_completions(
        self,
        request_ids: Iterable[str],
        timeout: float,
        *,
        on_completion: Callable[[AssetCompleted], None] | None = None,
    ) -> dict[str, AssetCompleted]:
        """The latest completion per id that completed within ``timeout`` seconds.

        Reads ``.completed`` from the beginning, so a completion that came before this call
        (say, of a resubmitted id) counts; ids missing from the result did not complete in
        time. The cost grows with the topic's size: a long-lived service that waits for many
        small groups should rather keep one reader (:func:`open_completion_reader`).
        """
        seen = await await_completions(
            self.settings,
            request_ids,
            timeout=timeout,
            codecs=self.codecs,
            on_completion=on_completion,
        )
        return {rid: latest_completion(events) for rid, events in seen.items()}

    async def send_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Publish arbitrary bytes (replays, tests of bad input), with optional headers."""
        await self._producer.send_and_wait(topic, key=key, value=value, headers=headers)


async def await_completions(
    settings: Settings,
    request_ids: Iterable[str],
    *,
    timeout: float,
    codecs: Codecs | None = None,
    on_completion: Callable[[AssetCompleted], None] | None = None,
    consumer: AIOKafkaConsumer | None = None,
) -> dict[str, list[AssetCompleted]]:
    """Read ``.completed`` from the beginning until every id has a completion or time runs out.

    Returns every completion seen per wanted id (a list, so callers can prove there is one).
    """
    codecs = codecs or Codecs.load()
    wanted = set(request_ids)
    seen: dict[str, list[AssetCompleted]] = {}
    own = consumer is None
    consumer = consumer or await open_completion_reader(settings)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not wanted.issubset(seen):
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for message in messages:
                    try:
                        done = codecs.completed.decode(message.value)
                    except CodecError:
                        continue
                    if done.request_id in wanted:
                        seen.setdefault(done.request_id, []).append(done)
                        if on_completion is not None:
                            on_completion(done)
    finally:
        if own:
            await consumer.stop()
    return seen


async def open_completion_reader(settings: Settings) -> AIOKafkaConsumer:
    """A group-less consumer on every partition of ``.completed``, from the beginning."""
    topic = TopicNames.with_prefix(settings.topic_prefix).completed
    return await open_topic_reader(settings, topic)
