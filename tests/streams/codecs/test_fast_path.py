"""The cavro fast path must decode exactly like the fastavro path, for every contract.

Same values on generated and real records, same outcome (value or identical error) on mutated
bodies, and trailing bytes / truncation / garbage still rejected.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest
from fastavro.utils import generate_many

import schemas
from schemas.records import (
    Alert,
    AlertKind,
    AssetCompleted,
    AssetKind,
    CompletionStatus,
    Constraints,
    Disposition,
    ModelSpec,
    ProviderAttempt,
    ReviewAction,
    ReviewDecision,
    ReviewItem,
    ReviewStatus,
    WebhookJob,
)
from streams.codecs import (
    HEADER_SIZE,
    MAGIC,
    AvroCodec,
    CodecError,
    Codecs,
    MalformedMessageError,
    RecordValidationError,
    SchemaStore,
    _fast,
)
from streams.codecs._fast import FastReader, fast_reader
from tests.support.assets import failed, make_request, make_validated, passed

AT = datetime(2024, 5, 17, 9, 30, 15, 123000, tzinfo=UTC)
FIELDS = {  # Codecs field -> contract (record) name
    "request": "GenerationRequest",
    "raw": "RawAsset",
    "validated": "ValidatedAsset",
    "completed": "AssetCompleted",
    "alert": "Alert",
    "review_decision": "ReviewDecision",
    "review_item": "ReviewItem",
    "webhook_job": "WebhookJob",
}


@pytest.fixture
def codecs() -> Codecs:
    return Codecs.load()


@pytest.fixture
def seeded() -> Iterator[None]:
    """generate_many draws from the global ``random``: fix it, then restore it."""
    state = random.getstate()
    random.seed(20240517)
    yield
    random.setstate(state)


def reference(codec: AvroCodec[Any], body: bytes) -> dict[str, Any]:
    """What the fastavro path returns (or raises) for ``body``."""
    return codec._read_fastavro(codec.fingerprint, memoryview(body))


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except CodecError as exc:
        return type(exc).__name__, str(exc)


def same(a: Any, b: Any) -> bool:
    """Equality that also holds for NaN doubles and checks types (no 1 == 1.0 == True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and a != a:
        return b != b
    return bool(a == b)


def decode_both(codec: AvroCodec[Any], data: bytes) -> tuple[tuple[str, Any], tuple[str, Any]]:
    """(fast path outcome, fastavro-only outcome) of ``codec.decode_dict(data)``."""
    fast = outcome(lambda: codec.decode_dict(data))
    saved, codec._fast = codec._fast, None
    try:
        slow = outcome(lambda: codec.decode_dict(data))
    finally:
        codec._fast = saved
    return fast, slow


def examples() -> list[tuple[str, Any]]:
    """One realistic record per contract, with nested records, unions, maps and enums set."""
    request = make_request(
        kind=AssetKind.IMAGE,
        prompt_template="A ${product}, Grüße 👋",
        variables={"product": "kettle"},
        model=ModelSpec(alias="fast-image", provider="offline", version="v2"),
        constraints=Constraints(width=640, height=480, format="png"),
        metadata={"source": "crm"},
        latency_budget_ms=-(2**31),
        attempt=2**31 - 1,
        created_at=AT,
    )
    validated = make_validated(
        [passed("size"), failed("brand", "off-palette")], request=request, judge_cost=0.25
    ).model_copy(update={"disposition": Disposition.REVIEW})
    decision = ReviewDecision(
        decision_id="d-1", request_id="r-1", action=ReviewAction.REJECT, reviewer="u-7", note="no"
    )
    completed = AssetCompleted(
        request_id="r-1",
        idempotency_key="k-1",
        tenant="acme",
        campaign_id="spring",
        kind=AssetKind.TEXT,
        status=CompletionStatus.FALLBACK,
        location="s3://bucket/key",
        reasons=["brand: off-palette"],
        cost=1.5,
        attempts=[ProviderAttempt(provider="a", model="m", code="timeout", input_tokens=2**40)],
        timings_ms={"total": 12.5, "nan": float("nan")},
        review=decision,
    )
    return [
        ("request", request),
        ("raw", validated.raw),
        ("validated", validated),
        ("completed", completed),
        (
            "alert",
            Alert(
                alert_id="a-1",
                kind=AlertKind.BREAKER_OPENED,
                message="breaker open",
                provider="openai",
                details={"failures": "5"},
                at=datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
            ),
        ),
        ("review_decision", decision),
        (
            "review_item",
            ReviewItem(
                request_id="r-1",
                status=ReviewStatus.REJECTED,
                asset=validated,
                queued_at=AT,
                decision=decision,
            ),
        ),
        (
            "webhook_job",
            WebhookJob(webhook_id="w-1", url="https://x.invalid", due_at=AT, completion=completed),
        ),
    ]


def test_every_contract_has_a_fast_path(codecs: Codecs) -> None:
    for field in FIELDS:
        assert isinstance(codecs.by_field(field)._fast, FastReader), field


@pytest.mark.parametrize(("field", "name"), FIELDS.items())
@pytest.mark.usefixtures("seeded")
def test_generated_records_decode_identically(codecs: Codecs, field: str, name: str) -> None:
    codec = codecs.by_field(field)
    assert codec._fast is not None
    for datum in generate_many(schemas.load(name), 150):
        data = codec.encode_dict(datum)
        body = data[HEADER_SIZE:]
        fast = codec._fast.read(body)
        assert fast is not None
        assert same(fast, reference(codec, body))
        assert same(codec.decode_dict(data), fast)


@pytest.mark.parametrize(("field", "record"), examples(), ids=lambda v: str(v)[:20])
def test_real_records_decode_to_equal_models(codecs: Codecs, field: str, record: Any) -> None:
    codec = codecs.by_field(field)
    assert codec._fast is not None
    data = codec.encode(record)
    fast = codec._fast.read(data[HEADER_SIZE:])
    slow = reference(codec, data[HEADER_SIZE:])
    assert fast is not None
    assert same(fast, slow)
    model = codec.decode(data)
    assert type(model) is type(record)
    assert model.model_dump_json() == codec.model.model_validate(slow).model_dump_json()
    assert model.model_dump_json() == record.model_dump_json()
    assert codec.encode(model) == data


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.usefixtures("seeded")
def test_mutated_bodies_give_the_same_value_or_the_same_error(codecs: Codecs, field: str) -> None:
    codec = codecs.by_field(field)
    rng = random.Random(7)
    kinds: set[str] = set()
    for datum in generate_many(schemas.load(codec.model.__name__), 25):
        data = codec.encode_dict(datum)
        for _ in range(40):
            body = bytearray(data[HEADER_SIZE:])
            at = rng.randrange(len(body))
            match rng.randrange(5):
                case 0:
                    body[at] = rng.randrange(256)
                case 1:
                    del body[at:]
                case 2:
                    body.append(rng.randrange(256))
                case 3:
                    body[at] |= 0x80  # lengthen a varint
                case _:
                    body[at:at] = rng.randbytes(rng.randrange(1, 4))
            fast, slow = decode_both(codec, data[:HEADER_SIZE] + bytes(body))
            assert fast[0] == slow[0]
            assert same(fast[1], slow[1])
            kinds.add(fast[0])
    assert kinds >= {"ok", "MalformedMessageError"}


@pytest.mark.parametrize(("field", "record"), examples(), ids=lambda v: str(v)[:20])
def test_fast_reader_rejects_trailing_and_truncated_bodies(
    codecs: Codecs, field: str, record: Any
) -> None:
    codec = codecs.by_field(field)
    fast = codec._fast
    assert fast is not None
    data = codec.encode(record)
    body = data[HEADER_SIZE:]
    assert fast.read(body) is not None
    for extra in (b"\x00", b"\x00\x00\x00", body):
        assert fast.read(body + extra) is None
        with pytest.raises(MalformedMessageError, match=f"has {len(extra)} trailing bytes"):
            codec.decode(data + extra)
    for cut in range(len(body)):
        assert fast.read(body[:cut]) is None
        with pytest.raises(MalformedMessageError, match=f"{codec.model.__name__} body is"):
            codec.decode(data[: HEADER_SIZE + cut])


def test_garbage_is_rejected_on_the_fast_path(codecs: Codecs) -> None:
    codec = codecs.request
    assert codec._fast is not None
    header = MAGIC + codec.fingerprint
    for garbage in (
        b"\xff" * 30,
        b"\x80" * 12,
        b"\x02\xff\xfe\xfd",
        b"\x02\xc3\x28" + b"\x00" * 40,
    ):
        assert codec._fast.read(garbage) is None
        fast, slow = decode_both(codec, header + garbage)
        assert fast == slow
        assert fast[0] == "MalformedMessageError"


def test_out_of_range_int_is_not_wrapped(codecs: Codecs) -> None:
    """cavro would wrap an Avro ``int`` to 32 bits; the fast path reads it as ``long`` instead,
    so the value stays whole and the model rejects it, as on the fastavro path."""
    codec = codecs.request
    data = codec.encode_dict({**make_request().model_dump(), "attempt": 2**40 + 1})
    assert codec._fast is not None
    assert codec._fast.read(data[HEADER_SIZE:]) == reference(codec, data[HEADER_SIZE:])
    assert codec.decode_dict(data)["attempt"] == 2**40 + 1
    with pytest.raises(RecordValidationError, match="invalid at attempt"):
        codec.decode(data)


def zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(out) + bytes((n,))


def text(value: str) -> bytes:
    raw = value.encode()
    return zigzag(len(raw)) + raw


BLOCKS_SCHEMA = {
    "type": "record",
    "name": "Blocks",
    "fields": [
        {"name": "a", "type": {"type": "array", "items": "string"}},
        {"name": "m", "type": {"type": "map", "values": "long"}},
        {"name": "u", "type": ["null", "string"]},
    ],
}


def blocks_codec() -> AvroCodec[Any]:
    from pydantic import BaseModel

    class Blocks(BaseModel):
        a: list[str]
        m: dict[str, int]
        u: str | None

    return AvroCodec(Blocks, BLOCKS_SCHEMA, SchemaStore())


def test_inputs_only_fastavro_reads_still_decode() -> None:
    """Negative block counts (size-prefixed blocks) and negative union indexes: cavro refuses
    them, so the codec falls back to fastavro and gets what it got before."""
    codec = blocks_codec()
    assert codec._fast is not None
    header = MAGIC + codec.fingerprint
    items = text("x") + text("yy")
    entry = text("k") + zigzag(5)
    bodies = [
        zigzag(-2)
        + zigzag(len(items))
        + items
        + zigzag(0)
        + zigzag(-1)
        + zigzag(len(entry))
        + entry
        + zigzag(0)
        + zigzag(0),
        zigzag(0) + zigzag(0) + zigzag(-1) + text("last"),
    ]
    for body in bodies:
        assert codec._fast.read(body) is None
        fast, slow = decode_both(codec, header + body)
        assert fast[0] == "ok"
        assert fast == slow


def test_timestamps_match_at_the_edges() -> None:
    schema = {
        "type": "record",
        "name": "T",
        "fields": [{"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}}],
    }
    parsed = fastavro.parse_schema(schema, named_schemas={})
    fast = fast_reader(schema)
    assert fast is not None
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    top = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - epoch) // timedelta(
        milliseconds=1
    )
    for millis in (0, -1, -999, -1000, -1001, 1, 999, 1715938215123, -62135596800000, top):
        body = zigzag(millis)
        expected = fastavro.schemaless_reader(io.BytesIO(body), parsed, None)
        assert fast.read(body) == expected
        assert fast.read(body)["t"].tzinfo is not None  # type: ignore[index]


@pytest.mark.parametrize(
    "member",
    [
        "bytes",
        "float",
        "null",
        {"type": "fixed", "name": "F", "size": 4},
        {"type": "int", "logicalType": "date"},
        {"type": "string", "logicalType": "uuid"},
        {"type": "long", "logicalType": "timestamp-micros"},
        {"type": "record", "name": "Empty", "fields": []},
    ],
    ids=str,
)
def test_types_not_proven_equal_stay_on_fastavro(member: Any) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "x", "type": member}]}
    assert fast_reader(schema) is None
    assert fast_reader({**schema, "fields": [{"name": "x", "type": ["null", "string"]}]})


def test_valid_messages_never_reach_fastavro(
    codecs: Codecs, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_: object) -> None:
        raise AssertionError("fastavro was used")

    monkeypatch.setattr(fastavro, "schemaless_reader", fail)
    for field, record in examples():
        codec = codecs.by_field(field)
        assert codec.decode(codec.encode(record)).model_dump_json() == record.model_dump_json()


def test_without_cavro_everything_goes_through_fastavro(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fast, "cavro", None)
    codecs = Codecs.load()
    for field, record in examples():
        codec = codecs.by_field(field)
        assert codec._fast is None
        assert codec.decode(codec.encode(record)).model_dump_json() == record.model_dump_json()
    data = codecs.completed.encode(examples()[3][1])
    with pytest.raises(MalformedMessageError, match="1 trailing bytes"):
        codecs.completed.decode(data + b"\x00")
