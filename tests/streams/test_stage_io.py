"""StageIO: what every agent does around its pure function (decode, dead-letter, guard)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fastavro
import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from schemas.records import BlobRef
from streams import stage_io
from streams.blobs import LocalBlobStore
from streams.codecs import MAGIC, Codecs, SchemaStore
from streams.dead_letters import VALUE_PARKED, VALUE_SHA256, VALUE_SIZE, header_map
from streams.metrics import StageMetrics
from streams.settings import Settings
from streams.stage_io import CRASH_OUTCOME_FAILED, CRASH_OUTPUT, MAX_CRASH_MESSAGE, StageIO
from streams.trace_context import extract, parse_traceparent
from tests.support.assets import make_request
from tests.support.gated_blobs import GatedBlobStore, release_when_started


class RecordingTopic:
    """Records sends, which Faust returns as a future of the broker's acknowledgement.

    The first ``failures`` sends fail: odd ones raise at once (the producer refuses), even
    ones through the returned future (the broker refuses).
    """

    def __init__(self, failures: int = 0) -> None:
        self.sent: list[dict[str, Any]] = []
        self.failures = failures
        self.tries = 0

    async def send(self, **kwargs: Any) -> asyncio.Future[None]:
        self.tries += 1
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.tries <= self.failures:
            if self.tries % 2:
                raise MessageSizeTooLargeError("refused by the producer")
            delivery.set_exception(KafkaTimeoutError("not acknowledged by the broker"))
            return delivery
        self.sent.append(kwargs)
        delivery.set_result(None)
        return delivery


class HoldingConsumer:
    """The two SafeConsumer methods a stage calls, recording what is held."""

    def __init__(self) -> None:
        self.held: list[Any] = []

    def hold(self, message: Any) -> None:
        self.held.append(message)

    def release(self, message: Any) -> None:
        self.held = [m for m in self.held if m is not message]


def make_io(
    failures: int = 0, *, blob_dir: Path | None = None, max_message_bytes: int = 1024 * 1024
) -> tuple[StageIO, RecordingTopic, CollectorRegistry]:
    registry = CollectorRegistry()
    deadletter = RecordingTopic(failures)
    line = SimpleNamespace(
        settings=Settings(max_message_bytes=max_message_bytes, max_request_bytes=1024),
        metrics=StageMetrics.build(registry),
        topics=SimpleNamespace(deadletter=deadletter),
        blobs=LocalBlobStore(blob_dir or Path(tempfile.mkdtemp())),
        app=SimpleNamespace(consumer=HoldingConsumer()),
    )
    return StageIO(line, "generate"), deadletter, registry  # type: ignore[arg-type]


def event(value: bytes | None, headers: Any = None) -> SimpleNamespace:
    message = SimpleNamespace(
        topic="t.requests", partition=2, offset=41, key=b"k", value=value, headers=headers
    )
    return SimpleNamespace(message=message)


def test_undecodable_value_is_dead_lettered_with_its_origin() -> None:
    io, deadletter, registry = make_io()
    result = asyncio.run(io.decode(Codecs.load().request, event(b"junk", [("trace", b"abc")])))
    assert result is None
    (sent,) = deadletter.sent
    assert sent["key"] == b"k"
    assert sent["value"] == b"junk"
    headers = header_map(sent["headers"])
    assert headers["trace"] == "abc"
    assert headers["assetline.dlq.error.code"] == "codec.malformed"
    assert headers["assetline.dlq.source.topic"] == "t.requests"
    assert headers["assetline.dlq.source.partition"] == "2"
    assert headers["assetline.dlq.source.offset"] == "41"
    errors = registry.get_sample_value(
        "assetline_stage_errors_total", {"stage": "generate", "code": "codec.malformed"}
    )
    assert errors == 1.0


def test_null_value_is_dead_lettered_not_crashing() -> None:
    io, deadletter, _ = make_io()
    assert asyncio.run(io.decode(Codecs.load().request, event(None))) is None
    assert len(deadletter.sent) == 1


def test_unexpected_exception_is_dead_lettered_and_swallowed() -> None:
    io, deadletter, registry = make_io()

    async def go() -> None:
        async with io.handling(event(b"v", {"h": b"1"})):
            raise KeyError("boom")

    asyncio.run(go())
    (sent,) = deadletter.sent
    headers = header_map(sent["headers"])
    assert headers["assetline.dlq.error.code"] == "generate.crashed"
    assert "KeyError" in headers["assetline.dlq.error.reason"]
    assert headers["h"] == "1"
    assert registry.get_sample_value("assetline_stage_events_in_total", {"stage": "generate"}) == 1
    assert registry.get_sample_value("assetline_stage_seconds_count", {"stage": "generate"}) == 1


def test_cancellation_is_not_swallowed() -> None:
    io, deadletter, _ = make_io()

    async def go() -> None:
        async with io.handling(event(b"v")):
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(go())
    assert deadletter.sent == []


def test_a_request_over_the_size_limit_is_dead_lettered_before_decoding() -> None:
    """Issue 12 #2: a near-1 MB request made every derived record too large to send."""
    io, deadletter, registry = make_io()
    value = Codecs.load().request.encode(make_request()) + b"x" * 2000  # not even decodable
    result = asyncio.run(
        io.decode(
            Codecs.load().request, event(value), max_bytes=1024, too_large="request.too_large"
        )
    )
    assert result is None
    (sent,) = deadletter.sent
    assert sent["value"] == value  # fits the producer's limit, so kept as is
    headers = header_map(sent["headers"])
    assert headers["assetline.dlq.error.code"] == "request.too_large"
    assert str(len(value)) in headers["assetline.dlq.error.reason"]
    count = registry.get_sample_value(
        "assetline_stage_errors_total", {"stage": "generate", "code": "request.too_large"}
    )
    assert count == 1.0


def test_a_request_within_the_limit_decodes() -> None:
    io, deadletter, _ = make_io()
    request = make_request()
    value = Codecs.load().request.encode(request)
    decoded = asyncio.run(io.decode(Codecs.load().request, event(value), max_bytes=len(value)))
    assert decoded == request
    assert deadletter.sent == []


def test_a_dead_letter_over_the_producer_limit_parks_its_value_in_the_blob_store(
    tmp_path: Path,
) -> None:
    """Issue 12 #2: the dead-letter send of a too-large original failed the same way."""
    io, deadletter, _ = make_io(blob_dir=tmp_path, max_message_bytes=64 * 1024)
    value = bytes(range(256)) * 400  # 100 KiB
    asyncio.run(io.dead_letter(event(value), "generate.crashed", "MessageSizeTooLargeError"))
    (sent,) = deadletter.sent
    assert sent["value"] == b""
    headers = header_map(sent["headers"])
    digest = hashlib.sha256(value).hexdigest()
    assert headers[VALUE_SIZE] == str(len(value))
    assert headers[VALUE_SHA256] == digest
    assert headers[VALUE_PARKED].startswith("file://")
    assert headers["assetline.dlq.error.code"] == "generate.crashed"
    ref = BlobRef(uri=headers[VALUE_PARKED], sha256=digest, size=len(value), media_type="x")
    assert LocalBlobStore(tmp_path).get(ref) == value


def test_parking_a_dead_letter_value_does_not_block_the_event_loop(tmp_path: Path) -> None:
    """On the S3 store a put is HTTP calls: parking used the blocking ``put`` on the loop, so
    every partition of the worker stalled while one message was dead-lettered."""
    io, deadletter, _ = make_io(max_message_bytes=64 * 1024)
    store = GatedBlobStore(tmp_path)
    io.line.blobs = store
    value = bytes(range(256)) * 400  # 100 KiB: parked

    async def go() -> None:
        await asyncio.gather(
            io.dead_letter(event(value), "generate.crashed", "MessageSizeTooLargeError"),
            release_when_started(store),
        )

    asyncio.run(go())
    assert store.steps == ["put started", "another coroutine ran", "put done"]
    (sent,) = deadletter.sent
    headers = header_map(sent["headers"])
    assert sent["value"] == b""
    digest = hashlib.sha256(value).hexdigest()
    ref = BlobRef(uri=headers[VALUE_PARKED], sha256=digest, size=len(value), media_type="x")
    assert LocalBlobStore(tmp_path).get(ref) == value
    assert io.line.app.consumer.held == []


def test_a_stage_stopped_while_parking_holds_the_event(tmp_path: Path) -> None:
    """Parking is now an await: a cancellation there must hold the event like one mid-send."""
    io, deadletter, _ = make_io(max_message_bytes=64 * 1024)
    store = GatedBlobStore(tmp_path)  # never released
    io.line.blobs = store
    the_event = event(bytes(100 * 1024))

    async def go() -> None:
        task = asyncio.ensure_future(io.dead_letter(the_event, "generate.crashed", "big"))
        await store.started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert deadletter.sent == []
    assert the_event.message in io.line.app.consumer.held


def test_a_failed_dead_letter_send_is_retried_never_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 12 #2: the event was acknowledged although its dead letter was never written."""
    monkeypatch.setattr(stage_io, "DEADLETTER_RETRY_S", (0.01, 0.02))
    io, deadletter, registry = make_io(failures=3)
    the_event = event(b"v")
    asyncio.run(io.dead_letter(the_event, "codec.malformed", "junk"))
    assert deadletter.tries == 4
    assert len(deadletter.sent) == 1
    assert io.line.app.consumer.held == []  # released once written
    failed = registry.get_sample_value(
        "assetline_stage_errors_total", {"stage": "generate", "code": "deadletter.send_failed"}
    )
    assert failed == 3.0


def test_a_stage_stopped_while_its_dead_letter_is_unwritten_holds_the_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cancelled mid-retry (shutdown, rebalance): Faust would acknowledge the event; the
    consumer is told to hold it instead, so its offset is never committed."""
    monkeypatch.setattr(stage_io, "DEADLETTER_RETRY_S", (0.01, 0.02))
    io, deadletter, _ = make_io(failures=10**9)
    the_event = event(b"v")

    async def go() -> None:
        task = asyncio.ensure_future(io.dead_letter(the_event, "codec.malformed", "junk"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert deadletter.sent == []
    assert the_event.message in io.line.app.consumer.held


def test_an_output_too_large_to_send_is_dead_lettered_with_its_own_code() -> None:
    io, deadletter, _ = make_io()

    async def go() -> None:
        async with io.handling(event(b"v")):
            raise MessageSizeTooLargeError("The message is 1048700 bytes when serialized")

    asyncio.run(go())
    (sent,) = deadletter.sent
    headers = header_map(sent["headers"])
    assert headers["assetline.dlq.error.code"] == "generate.output_too_large"
    assert "1048700 bytes" in headers["assetline.dlq.error.reason"]


def test_an_armed_crash_ends_the_request_after_the_dead_letter() -> None:
    """Issue 14 #1: a crash used to leave the request open until a person re-drove it."""
    io, deadletter, registry = make_io()
    the_event = event(b"v")
    seen: list[tuple[str, int, list[Any]]] = []

    async def end(message: str) -> bool:
        held = list(io.line.app.consumer.held)
        seen.append((message, len(deadletter.sent), held))
        return True

    async def go() -> None:
        async with io.handling(the_event) as crash:
            crash.arm(end)
            raise KeyError("boom")

    asyncio.run(go())
    ((message, letters_before, held),) = seen
    assert message == "generate: KeyError: 'boom'"
    assert letters_before == 1  # the dead letter is written first
    assert held == [the_event.message]  # no offset commits past it while the outcome is sent
    assert io.line.app.consumer.held == []
    assert (
        registry.get_sample_value(
            "assetline_stage_events_out_total", {"stage": "generate", "output": CRASH_OUTPUT}
        )
        == 1.0
    )


def test_on_crash_can_be_given_up_front_and_a_disarmed_guard_only_dead_letters() -> None:
    io, deadletter, _ = make_io()
    calls: list[str] = []

    async def end(message: str) -> bool:
        calls.append(message)
        return True

    async def go(disarm: bool) -> None:
        async with io.handling(event(b"v"), on_crash=end) as crash:
            if disarm:
                crash.disarm()  # say, the request was handed on to a new attempt
            raise RuntimeError("bug")

    asyncio.run(go(disarm=False))
    asyncio.run(go(disarm=True))
    assert calls == ["generate: RuntimeError: bug"]
    assert len(deadletter.sent) == 2


def test_a_failing_crash_outcome_is_counted_and_never_raised() -> None:
    io, deadletter, registry = make_io()
    the_event = event(b"v")

    async def end(message: str) -> bool:
        raise ConnectionError("broker gone")

    async def go() -> None:
        async with io.handling(the_event, on_crash=end):
            raise KeyError("boom")

    asyncio.run(go())
    assert len(deadletter.sent) == 1  # the dead letter keeps the event
    assert io.line.app.consumer.held == []
    failed = registry.get_sample_value(
        "assetline_stage_errors_total", {"stage": "generate", "code": CRASH_OUTCOME_FAILED}
    )
    assert failed == 1.0
    assert (
        registry.get_sample_value(
            "assetline_stage_events_out_total", {"stage": "generate", "output": CRASH_OUTPUT}
        )
        is None
    )


def test_nothing_left_to_emit_is_not_counted_as_a_crash_completion() -> None:
    io, _, registry = make_io()

    async def already_done(message: str) -> bool:
        return False

    async def go() -> None:
        async with io.handling(event(b"v"), on_crash=already_done):
            raise KeyError("boom")

    asyncio.run(go())
    assert (
        registry.get_sample_value(
            "assetline_stage_events_out_total", {"stage": "generate", "output": CRASH_OUTPUT}
        )
        is None
    )


def test_an_output_too_large_also_ends_the_request() -> None:
    io, deadletter, _ = make_io()
    calls: list[str] = []

    async def end(message: str) -> bool:
        calls.append(message)
        return True

    async def go() -> None:
        async with io.handling(event(b"v"), on_crash=end):
            raise MessageSizeTooLargeError("The message is 1048700 bytes when serialized")

    asyncio.run(go())
    (message,) = calls
    assert message.startswith("generate: MessageSizeTooLargeError: ")
    headers = header_map(deadletter.sent[0]["headers"])
    assert headers["assetline.dlq.error.code"] == "generate.output_too_large"


def test_the_crash_message_is_redacted_bounded_and_encodable() -> None:
    """An exception text may quote a key, a huge input, or a lone surrogate from bad bytes."""
    io, deadletter, _ = make_io()
    key = "sk-live-" + "a" * 24
    io.line.settings = io.line.settings.model_copy(update={"api_keys": {"p": SecretStr(key)}})
    calls: list[str] = []

    async def end(message: str) -> bool:
        calls.append(message)
        return True

    async def go() -> None:
        async with io.handling(event(b"v"), on_crash=end):
            raise ValueError(f"bad key {key} for \ud800 " + "x" * 5000)

    asyncio.run(go())
    (message,) = calls
    assert key not in message
    assert "***" in message
    assert len(message) <= MAX_CRASH_MESSAGE
    message.encode("utf-8")  # no lone surrogate left
    reason = header_map(deadletter.sent[0]["headers"])["assetline.dlq.error.reason"]
    assert key not in reason
    assert "\\ud800" in reason


def test_the_kafka_secrets_are_redacted_from_crash_messages_too() -> None:
    """A client error may quote the SASL password or the key password: scrubbed like API keys."""
    io, _, _ = make_io()
    password, key_password = "sasl-pass-" + "b" * 12, "key-pass-" + "c" * 12
    io.line.settings = io.line.settings.model_copy(
        update={
            "kafka_sasl_password": SecretStr(password),
            "kafka_ssl_key_password": SecretStr(key_password),
        }
    )
    message = io.crash_message(RuntimeError(f"login {password!r} / {key_password} refused"))
    assert password not in message
    assert key_password not in message
    assert message.count("***") == 2


def test_handling_sets_the_request_id_for_log_lines_and_counts_in_progress() -> None:
    from streams.json_logs import request_id_var

    io, _, registry = make_io()
    seen: list[str | None] = []

    def in_progress() -> float | None:
        return registry.get_sample_value("assetline_stage_in_progress", {"stage": "generate"})

    async def go() -> None:
        async with io.handling(event(b"v")):  # the event's key is b"k"
            seen.append(request_id_var.get())
            seen.append(str(in_progress()))
        async with io.handling(event(b"v")):
            raise KeyError("boom")  # dead-lettered, swallowed; the context still ends

    asyncio.run(go())
    assert seen == ["k", "1.0"]
    assert request_id_var.get() is None
    assert in_progress() == 0


PRODUCER_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_outputs_and_dead_letters_of_an_event_carry_its_trace_from_the_stage_span() -> None:
    """Every record written while handling an event is in the event's trace, one span down."""
    io, deadletter, _ = make_io()
    out = RecordingTopic()
    crash_outputs: list[list[tuple[str, bytes]]] = []

    async def end(message: str) -> bool:
        await io.send(out, "k", b"crash", "rejected")
        crash_outputs.append(out.sent[-1]["headers"])
        return True

    async def go() -> None:
        async with io.handling(event(b"v", [("traceparent", PRODUCER_TRACE.encode())])) as c:
            await io.send(out, "k", b"raw", "raw", [("assetline.reused", b"true")])
            c.arm(end)
            raise KeyError("boom")

    asyncio.run(go())
    contexts = [extract(h) for h in [out.sent[0]["headers"], deadletter.sent[0]["headers"]]]
    contexts.append(extract(crash_outputs[0]))
    assert all(c is not None for c in contexts)
    assert {c.trace_id for c in contexts if c} == {"4bf92f3577b34da6a3ce929d0e0e4736"}
    assert len({c.span_id for c in contexts if c}) == 1  # the stage's span
    assert contexts[0] is not None
    assert contexts[0].span_id != "00f067aa0ba902b7"  # a child of the producer's span
    assert header_map(out.sent[0]["headers"])["assetline.reused"] == "true"


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [("traceparent", b"00-zz-zz-zz")],
        [("traceparent", PRODUCER_TRACE.encode()), ("traceparent", PRODUCER_TRACE.encode())],
        {"traceparent": b"\xff" * 100_000},
    ],
)
def test_an_event_without_a_valid_traceparent_starts_a_trace_its_records_share(
    headers: Any,
) -> None:
    io, deadletter, _ = make_io()
    out = RecordingTopic()

    async def go() -> None:
        async with io.handling(event(b"v", headers)):
            await io.send(out, "k", b"a", "raw")
            await io.send(out, "k", b"b", "alerts")
        await io.decode(Codecs.load().request, event(b"junk", headers))  # outside: its own

    asyncio.run(go())
    first, second = (extract(s["headers"]) for s in out.sent)
    assert first is not None
    assert first == second
    assert first.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736"
    (dead,) = deadletter.sent
    traceparents = [v for k, v in dead["headers"] if k == "traceparent"]
    assert len(traceparents) == 1  # the junk one replaced, not kept beside
    assert extract(dead["headers"]) is not None


def test_a_given_trace_is_the_parent_instead_of_the_events_headers() -> None:
    """A review decision carries no trace of the request; the stored item's trace is used."""
    io, _, _ = make_io()
    out = RecordingTopic()
    stored = parse_traceparent(PRODUCER_TRACE)

    async def go() -> None:
        async with io.handling(event(b"v", None), trace=stored):
            await io.send(out, "k", b"approved", "approved")

    asyncio.run(go())
    sent = extract(out.sent[0]["headers"])
    assert sent is not None
    assert sent.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_peek_fields_reads_a_request_as_plain_data_and_never_raises() -> None:
    codec = Codecs.load().request
    request = make_request(request_id="r-9", tenant="zeta", priority="HIGH")
    datum = stage_io.peek_fields(codec, event(codec.encode(request)))
    assert datum is not None
    assert (datum["request_id"], datum["tenant"], datum["priority"]) == ("r-9", "zeta", "HIGH")
    assert datum == codec.decode_dict(codec.encode(request))
    for bad in (None, b"", b"junk", codec.encode(request)[:-3]):
        assert stage_io.peek_fields(codec, event(bad)) is None
    assert stage_io.peek_fields(codec, SimpleNamespace()) is None


def test_peek_fields_resolves_an_older_writer_to_the_current_shape() -> None:
    """A v0.1.0 producer wrote no priority: the reader's default (NORMAL) is read."""
    release = Path(__file__).parents[2] / "schemas/releases/0.1.0/generation_request.avsc"
    old = json.loads(release.read_text())
    store = SchemaStore()
    fingerprint = store.register(old)
    codec = Codecs.load(store).request
    datum = make_request(request_id="r-old").model_dump()
    names = {field["name"] for field in old["fields"]}
    assert "priority" not in names
    body = BytesIO()
    fastavro.schemaless_writer(body, store.writer(fingerprint), {k: datum[k] for k in names})
    read = stage_io.peek_fields(codec, event(MAGIC + fingerprint + body.getvalue()))
    assert read is not None
    assert (read["request_id"], read["priority"]) == ("r-old", "NORMAL")
