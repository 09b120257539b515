"""A replay is the same request as a deterministic new attempt, with traceable headers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from assetline.replay.rewrite import HEADER_PREFIX, RecordKind, Rewriter, kind_of, replay_headers
from schemas.attempts import REPLAY_STRIDE, generation_of, replay_attempt
from schemas.records import (
    BlobRef,
    GenerationRequest,
    RawAsset,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from streams.codecs import CodecError, Codecs
from streams.topics import TopicNames

NOW = datetime(2025, 3, 1, 8, 0, 0, 5000, tzinfo=UTC)


@pytest.fixture(scope="module")
def codecs() -> Codecs:
    return Codecs.load()


def _request(attempt: int = 1) -> GenerationRequest:
    return GenerationRequest(
        request_id="r-1",
        idempotency_key="k-1",
        tenant="acme",
        campaign_id="c",
        kind="TEXT",
        prompt_template="Hi ${persona}",
        variables={"persona": "p"},
        attempt=attempt,
    )


def _raw(attempt: int = 1) -> RawAsset:
    blob = BlobRef(uri="file:///b/ab", sha256="ab" * 32, size=3, media_type="text/plain")
    return RawAsset(
        request=_request(attempt), blob=blob, provider="offline", model_version="v", latency_ms=1
    )


def test_the_stride_is_above_the_lines_own_attempts() -> None:
    # A profile allows at most 10 attempts; a replay must outrank every one of them.
    assert REPLAY_STRIDE > 10


@pytest.mark.parametrize(
    ("attempt", "generation", "expected"),
    [
        (1, None, 1001),  # first replay of an original
        (3, None, 1003),  # the line had re-generated twice: still above 3, base kept
        (1001, None, 2001),  # a replay of a replay is the next generation
        (1, 4, 4001),  # an explicit generation
        (2002, 2, 2002),  # explicit and already there: same number (the ledger drops it)
    ],
)
def test_replay_attempt(attempt: int, generation: int | None, expected: int) -> None:
    assert replay_attempt(attempt, generation) == expected


def test_replay_attempt_is_deterministic_and_outranks_the_source() -> None:
    for attempt in (1, 2, 10, 1001, 1010, 5003):
        new = replay_attempt(attempt)
        assert new == replay_attempt(attempt)
        assert new > attempt
        assert generation_of(new) == generation_of(attempt) + 1


def test_replay_attempt_limits() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        replay_attempt(1, 0)
    with pytest.raises(ValueError, match="Avro int"):
        replay_attempt(1, 2**31 // REPLAY_STRIDE + 1)


def test_kinds_of_line_topics() -> None:
    names = TopicNames.with_prefix("p")
    assert kind_of(names, "p.requests") is RecordKind.REQUEST
    assert kind_of(names, "p.raw") is RecordKind.RAW
    assert kind_of(names, "p.approved") is RecordKind.VALIDATED
    assert kind_of(names, "p.rejected") is RecordKind.VALIDATED
    assert kind_of(names, "p.completed") is None
    assert kind_of(names, "q.requests") is None  # another line's topic


def test_rewrite_request_bumps_only_the_attempt_and_the_deadline_start(codecs: Codecs) -> None:
    original = codecs.request.decode(codecs.request.encode(_request()))  # at millisecond grain
    out = Rewriter(codecs).rewrite(RecordKind.REQUEST, codecs.request.encode(original), None)
    back = codecs.request.decode(out.value)
    # created_at is the replay time (the replay's deadline starts then): never earlier.
    assert back.created_at >= original.created_at
    assert back == original.model_copy(update={"attempt": 1001, "created_at": back.created_at})
    assert (out.request_id, out.old_attempt, out.new_attempt) == ("r-1", 1, 1001)
    assert not out.superseded


def test_rewrite_raw_and_validated_bump_the_embedded_request(codecs: Codecs) -> None:
    rewriter = Rewriter(codecs)
    raw = _raw(2)
    out = rewriter.rewrite(RecordKind.RAW, codecs.raw.encode(raw), None)
    back_raw = codecs.raw.decode(out.value)
    assert back_raw.request.attempt == 1002
    assert back_raw.blob == raw.blob
    validated = ValidatedAsset(raw=raw, report=ValidationReport(verdict=Verdict.PASS))
    out = rewriter.rewrite(RecordKind.VALIDATED, codecs.validated.encode(validated), 3)
    back = codecs.validated.decode(out.value)
    assert back.raw.request.attempt == 3002
    assert back.report == validated.report
    assert rewriter.request_of(RecordKind.VALIDATED, out.value).attempt == 3002


def test_an_explicit_generation_already_reached_is_superseded(codecs: Codecs) -> None:
    value = codecs.request.encode(_request(2001))
    out = Rewriter(codecs).rewrite(RecordKind.REQUEST, value, 1)
    assert out.new_attempt == 1001
    assert out.superseded


@pytest.mark.parametrize("value", [b"", b"garbage", b"\xc3\x01" + b"\x00" * 8])
def test_undecodable_values_raise_codec_errors(codecs: Codecs, value: bytes) -> None:
    with pytest.raises(CodecError):
        Rewriter(codecs).rewrite(RecordKind.REQUEST, value, None)


def test_a_record_of_another_kind_is_undecodable(codecs: Codecs) -> None:
    with pytest.raises(CodecError):
        Rewriter(codecs).rewrite(RecordKind.RAW, codecs.request.encode(_request()), None)


def test_a_generation_beyond_an_avro_int_is_a_codec_error(codecs: Codecs) -> None:
    with pytest.raises(CodecError):
        Rewriter(codecs).rewrite(RecordKind.REQUEST, codecs.request.encode(_request()), 3_000_000)


def test_replay_headers_replace_dlq_and_earlier_replay_headers() -> None:
    original = [
        ("traceparent", b"00-abc-01"),
        ("assetline.dlq.error.code", b"codec.malformed"),
        ("assetline.replay.id", b"old"),
        ("assetline.replay.source", b"p.requests/0/1"),
    ]
    out = replay_headers(
        original,
        source_topic="p.raw",
        partition=2,
        offset=41,
        replay_id="rid",
        generation=1,
        now=NOW,
    )
    assert out == [
        ("traceparent", b"00-abc-01"),
        (HEADER_PREFIX + "source", b"p.raw/2/41"),
        (HEADER_PREFIX + "id", b"rid"),
        (HEADER_PREFIX + "generation", b"1"),
        (HEADER_PREFIX + "time", b"2025-03-01T08:00:00.005+00:00"),
    ]


def test_replay_headers_name_the_origin_of_a_redriven_dead_letter() -> None:
    out = dict(
        replay_headers(
            None,
            source_topic="p.deadletter",
            partition=0,
            offset=7,
            replay_id="rid",
            generation=1,
            origin="p.requests/1/3",
        )
    )
    assert out[HEADER_PREFIX + "source"] == b"p.deadletter/0/7"
    assert out[HEADER_PREFIX + "origin"] == b"p.requests/1/3"


def test_replayed_requests_get_a_fresh_mark_and_unadmissible_ones_none(codecs: Codecs) -> None:
    from agents.tenants import Gatekeeper
    from assetline.replay.rewrite import RecordKind, Rewriter, resubmission_marks

    gate = Gatekeeper(b"line")
    rewriter = Rewriter(codecs)
    first = codecs.request.encode(_request())
    out = rewriter.rewrite(RecordKind.REQUEST, first, None)
    marks = resubmission_marks(gate, RecordKind.REQUEST, out, first, [])
    assert marks == [gate.mark(out.value)]
    # A squatter's attempt=50 on the topic is not replayed into an accepted attempt.
    forged = codecs.request.encode(_request(attempt=50))
    out = rewriter.rewrite(RecordKind.REQUEST, forged, None)
    assert resubmission_marks(gate, RecordKind.REQUEST, out, forged, []) is None
    # Other kinds never go to .requests: nothing to mark; no marker: nothing marked.
    raw = codecs.raw.encode(_raw())
    out = rewriter.rewrite(RecordKind.RAW, raw, None)
    assert resubmission_marks(gate, RecordKind.RAW, out, raw, []) == []
    assert resubmission_marks(None, RecordKind.REQUEST, out, raw, []) == []


def test_replay_headers_drop_the_old_marks_of_a_rewritten_value() -> None:
    from streams.signing import ORIGIN_HEADER, SIGNATURE_HEADER

    out = replay_headers(
        [(ORIGIN_HEADER, b"v1=old"), (SIGNATURE_HEADER, b"v1=old"), ("traceparent", b"t")],
        source_topic="p.requests",
        partition=0,
        offset=1,
        replay_id="x",
        generation=1,
        now=NOW,
    )
    assert [k for k, _ in out if not k.startswith("assetline.replay.")] == ["traceparent"]


@pytest.mark.parametrize("kind", [RecordKind.REQUEST, RecordKind.RAW])
def test_a_replay_starts_its_deadline_now(codecs: Codecs, kind: RecordKind) -> None:
    """The deadline is created_at + latency budget: a replay of an old request is a new run."""
    old = _request().model_copy(update={"created_at": datetime(2020, 1, 1, tzinfo=UTC)})
    value = (
        codecs.request.encode(old)
        if kind is RecordKind.REQUEST
        else codecs.raw.encode(_raw().model_copy(update={"request": old}))
    )
    before = datetime.now(UTC).replace(microsecond=0)
    out = Rewriter(codecs).rewrite(kind, value, None)
    request = Rewriter(codecs).request_of(kind, out.value)
    assert request.created_at >= before
    assert request.attempt == 1001
