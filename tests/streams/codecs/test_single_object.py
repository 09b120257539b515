"""Avro single-object encoding: framing, fingerprints, typed errors, writer -> reader resolution."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest
from pydantic import ValidationError, field_validator

import schemas
from schemas.records import (
    AssetCompleted,
    AssetKind,
    AvroModel,
    BlobRef,
    CheckResult,
    CompletionStatus,
    Constraints,
    GenerationError,
    GenerationRequest,
    ModelSpec,
    RawAsset,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from streams.codecs import (
    HEADER_SIZE,
    MAGIC,
    CodecError,
    Codecs,
    MalformedMessageError,
    RecordValidationError,
    SchemaStore,
    SingleObjectCodec,
    UnknownSchemaError,
    fingerprint_as_long,
    schema_fingerprint,
    split_frame,
)

CREATED = datetime(2024, 5, 17, 9, 30, 15, 123000, tzinfo=UTC)
GENERATED = datetime(2024, 5, 17, 9, 30, 16, 456000, tzinfo=UTC)
COMPLETED = datetime(2024, 5, 17, 9, 30, 18, 789000, tzinfo=UTC)


def make_request(**overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "request_id": "req-0001",
        "idempotency_key": "campaign-7/persona-3",
        "tenant": "acme",
        "campaign_id": "spring-sale",
        "kind": AssetKind.IMAGE,
        "prompt_template": "A ${product} for ${persona}, Grüße 👋",
        "variables": {"product": "kettle", "persona": "runner"},
        "model": ModelSpec(alias="fast-image", provider="offline", version="v2"),
        "constraints": Constraints(width=640, height=480, format="png"),
        "brand_profile_id": "brand-42",
        "metadata": {"source": "crm"},
        "latency_budget_ms": 15_000,
        "attempt": 2,
        "created_at": CREATED,
        "callback_url": "https://hooks.example.invalid/done",
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


def make_raw_with_blob() -> RawAsset:
    return RawAsset(
        request=make_request(),
        blob=BlobRef(
            uri="file:///var/blobs/ab/cd/" + "ab" * 32,
            sha256="ab" * 32,
            size=12_345,
            media_type="image/png",
        ),
        provider="offline",
        model_version="offline-image-2",
        latency_ms=812.25,
        cost=0.0125,
        generated_at=GENERATED,
    )


def make_raw_with_error() -> RawAsset:
    return RawAsset(
        request=make_request(kind=AssetKind.TEXT, constraints=Constraints(max_chars=80)),
        error=GenerationError(code="provider.timeout", message="no answer in 15 s", retryable=True),
        provider="openai",
        model_version="",
        latency_ms=15_000.5,
        generated_at=GENERATED,
    )


def make_validated() -> ValidatedAsset:
    return ValidatedAsset(
        raw=make_raw_with_blob(),
        report=ValidationReport(
            verdict=Verdict.FAIL,
            checks=[
                CheckResult(code="image.size", passed=True, message="640x480", measured="640x480"),
                CheckResult(code="image.format", passed=False, message="got jpeg, want png"),
            ],
            duration_ms=3.5,
        ),
    )


def make_completed() -> AssetCompleted:
    return AssetCompleted(
        request_id="req-0001",
        idempotency_key="campaign-7/persona-3",
        tenant="acme",
        campaign_id="spring-sale",
        kind=AssetKind.JSON,
        attempt=3,
        status=CompletionStatus.REJECTED,
        reasons=["json.schema: $.price is not a number"],
        provider="offline",
        model_version="offline-json-1",
        cost=0.5,
        timings_ms={"generate": 1.5, "validate": 0.25, "deliver": 0.0, "total": 3663.0},
        completed_at=COMPLETED,
    )


@pytest.fixture
def codecs() -> Codecs:
    return Codecs.load()


def frame(fp: bytes, schema: dict[str, Any], datum: dict[str, Any]) -> bytes:
    """Single-object encoding done by hand with fastavro, as another producer would."""
    buffer = io.BytesIO()
    buffer.write(b"\xc3\x01" + fp)
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema, named_schemas={}), datum)
    return buffer.getvalue()


def without_fields(schema: dict[str, Any], *names: str) -> dict[str, Any]:
    out = dict(schema)
    out["fields"] = [f for f in schema["fields"] if f["name"] not in names]
    assert len(out["fields"]) == len(schema["fields"]) - len(names)
    return out


# --- Codecs.load and the schema store -------------------------------------------------------


def test_load_registers_every_committed_schema(codecs: Codecs) -> None:
    expected = {
        codecs.request: "GenerationRequest",
        codecs.raw: "RawAsset",
        codecs.validated: "ValidatedAsset",
        codecs.completed: "AssetCompleted",
        codecs.alert: "Alert",
        codecs.review_decision: "ReviewDecision",
        codecs.review_item: "ReviewItem",
        codecs.webhook_job: "WebhookJob",
    }
    assert len(codecs.store) == 8
    for codec, name in expected.items():
        assert codec.model.__name__ == name
        assert codec.fingerprint == schema_fingerprint(schemas.load(name))
        assert codec.fingerprint in codecs.store
        assert codec.store is codecs.store
    assert len({c.fingerprint for c in expected}) == 8


def test_load_can_share_a_store_that_already_knows_older_writers() -> None:
    store = SchemaStore()
    old = without_fields(schemas.load("GenerationRequest"), "callback_url")
    old_fp = store.register(old)
    codecs = Codecs.load(store)
    assert codecs.store is store
    assert old_fp in store
    assert len(store) == 9


def test_register_is_idempotent_and_returns_the_fingerprint() -> None:
    store = SchemaStore()
    schema = schemas.load("AssetCompleted")
    first = store.register(schema)
    second = store.register(schemas.load("AssetCompleted"))
    assert first == second == schema_fingerprint(schema)
    assert len(store) == 1
    assert store.writer(first)["name"] == "io.assetline.v1.AssetCompleted"


def test_store_knows_nothing_it_was_not_told() -> None:
    store = SchemaStore()
    unknown = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    assert unknown not in store
    with pytest.raises(UnknownSchemaError, match="0102030405060708"):
        store.writer(unknown)


def test_two_versions_of_the_same_named_records_coexist() -> None:
    store = SchemaStore()
    current = store.register(schemas.load("GenerationRequest"))
    old = store.register(without_fields(schemas.load("GenerationRequest"), "latency_budget_ms"))
    assert current != old
    names = [f["name"] for f in store.writer(old)["fields"]]
    assert "latency_budget_ms" not in names
    assert "latency_budget_ms" in [f["name"] for f in store.writer(current)["fields"]]


# --- round trips ------------------------------------------------------------------------------

ROUND_TRIPS = [
    pytest.param("request", make_request, id="GenerationRequest"),
    pytest.param(
        "request",
        lambda: make_request(
            model=ModelSpec(),
            constraints=Constraints(),
            variables={},
            metadata={},
            brand_profile_id=None,
            latency_budget_ms=None,
            callback_url=None,
        ),
        id="GenerationRequest-minimal",
    ),
    pytest.param("raw", make_raw_with_blob, id="RawAsset-blob"),
    pytest.param("raw", make_raw_with_error, id="RawAsset-error"),
    pytest.param("validated", make_validated, id="ValidatedAsset"),
    pytest.param("completed", make_completed, id="AssetCompleted"),
]


@pytest.mark.parametrize(("attr", "factory"), ROUND_TRIPS)
def test_round_trip(codecs: Codecs, attr: str, factory: Any) -> None:
    codec: SingleObjectCodec[Any] = getattr(codecs, attr)
    record = factory()
    data = codec.encode(record)
    decoded = codec.decode(data)
    assert type(decoded) is type(record)
    assert decoded == record
    assert decoded.model_dump() == record.model_dump()
    # Decoding is deterministic and re-encoding is byte-identical.
    assert codec.encode(decoded) == data


def test_round_trip_keeps_blob_and_error_apart(codecs: Codecs) -> None:
    with_blob = codecs.raw.decode(codecs.raw.encode(make_raw_with_blob()))
    with_error = codecs.raw.decode(codecs.raw.encode(make_raw_with_error()))
    assert with_blob.error is None
    assert with_blob.blob is not None
    assert with_blob.blob.size == 12_345
    assert with_error.blob is None
    assert with_error.error == GenerationError(
        code="provider.timeout", message="no answer in 15 s", retryable=True
    )


def test_round_trip_keeps_enums_timestamps_and_unicode(codecs: Codecs) -> None:
    decoded = codecs.validated.decode(codecs.validated.encode(make_validated()))
    assert decoded.report.verdict is Verdict.FAIL
    assert decoded.raw.request.kind is AssetKind.IMAGE
    assert decoded.raw.request.created_at == CREATED
    assert decoded.raw.request.created_at.tzinfo is not None
    assert decoded.raw.request.prompt_template.endswith("Grüße 👋")
    assert [c.code for c in decoded.report.checks] == ["image.size", "image.format"]


def test_records_with_default_timestamps_round_trip(codecs: Codecs) -> None:
    """utc_now() keeps milliseconds only, so default timestamps survive timestamp-millis."""
    record = GenerationRequest(
        request_id="r",
        idempotency_key="k",
        tenant="t",
        campaign_id="c",
        kind=AssetKind.CODE,
        prompt_template="p",
    )
    assert codecs.request.decode(codecs.request.encode(record)) == record


# --- framing and fingerprints ---------------------------------------------------------------


def test_frame_is_magic_then_little_endian_fingerprint_then_avro_body(codecs: Codecs) -> None:
    record = make_completed()
    data = codecs.completed.encode(record)
    assert data[:2] == b"\xc3\x01" == MAGIC
    assert HEADER_SIZE == 10
    fp = data[2:10]
    assert fp == schema_fingerprint(schemas.load("AssetCompleted"))
    assert struct.unpack("<q", fp)[0] == fingerprint_as_long(fp)
    # The body is plain Avro binary of the committed schema, readable by any Avro library.
    parsed = fastavro.parse_schema(schemas.load("AssetCompleted"), named_schemas={})
    body = io.BytesIO(data[10:])
    datum = fastavro.schemaless_reader(body, parsed, None)
    assert body.tell() == len(data) - 10
    assert datum["request_id"] == "req-0001"
    assert datum["status"] == "REJECTED"
    assert AssetCompleted.model_validate(datum) == record


def test_split_frame_returns_fingerprint_and_body(codecs: Codecs) -> None:
    data = codecs.request.encode(make_request())
    fp, body = split_frame(data)
    assert fp == codecs.request.fingerprint
    assert isinstance(body, memoryview)
    assert bytes(body) == data[HEADER_SIZE:]


# Test vectors from the Avro specification's test data (share/test/data/schema-tests.txt):
# input schema, and the signed 64-bit fingerprint Java's parsingFingerprint64 returns.
AVRO_SPEC_VECTORS = [
    pytest.param("null", 7195948357588979594, id="000-null"),
    pytest.param({"type": "null"}, 7195948357588979594, id="001-null-object"),
    pytest.param("boolean", -6970731678124411036, id="002-boolean"),
    pytest.param("int", 8247732601305521295, id="004-int"),
    pytest.param("string", -8142146995180207161, id="014-string"),
    pytest.param(
        {"fields": [], "type": "record", "name": "foo", "namespace": "x.y"},
        5916914534497305771,
        id="020-record-namespace",
    ),
    pytest.param(
        {"fields": [], "type": "record", "name": "foo", "doc": "Useful info"},
        -4824392279771201922,
        id="022-record-doc-ignored",
    ),
    pytest.param(
        {
            "namespace": "x.y.z",
            "type": "enum",
            "name": "foo",
            "doc": "foo bar",
            "symbols": ["A1", "A2"],
        },
        -4448647247586288245,
        id="028-enum",
    ),
    pytest.param({"name": "foo", "type": "fixed", "size": 15}, 1756455273707447556, id="029-fixed"),
    pytest.param({"values": "string", "type": "map"}, -8732877298790414990, id="032-map"),
]


@pytest.mark.parametrize(("schema", "expected"), AVRO_SPEC_VECTORS)
def test_fingerprint_matches_the_avro_spec_test_vectors(schema: Any, expected: int) -> None:
    fp = schema_fingerprint(schema)
    assert len(fp) == 8
    assert fingerprint_as_long(fp) == expected
    assert fp == struct.pack("<q", expected)  # little-endian on the wire


def test_null_fingerprint_bytes_on_the_wire() -> None:
    # 7195948357588979594 == 0x63DD24E7CC258F8A, written least significant byte first.
    assert schema_fingerprint("null") == bytes.fromhex("8a8f25cce724dd63")  # type: ignore[arg-type]


def test_fingerprint_as_long_is_signed() -> None:
    assert fingerprint_as_long(b"\xff" * 8) == -1
    assert fingerprint_as_long(b"\x01" + b"\x00" * 7) == 1


def test_docs_do_not_change_the_fingerprint() -> None:
    """Parsing Canonical Form drops docs: rewording a doc is not a new schema version."""
    schema = schemas.load("GenerationRequest")
    reworded = dict(schema, doc="something else entirely")
    reworded["fields"] = [dict(f, doc="changed") for f in schema["fields"]]
    assert schema_fingerprint(reworded) == schema_fingerprint(schema)
    renamed = without_fields(schema, "callback_url")
    assert schema_fingerprint(renamed) != schema_fingerprint(schema)


# --- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc3", id="one-byte"),
        pytest.param(b"\xc3\x01\x00\x01\x02", id="short-fingerprint"),
        pytest.param(b'{"request_id": "r-1"}', id="json"),
        pytest.param(b"\x02\xc3" + b"\x00" * 40, id="magic-reversed-ish"),
    ],
)
def test_bytes_that_are_not_single_object_encoding_are_malformed(
    codecs: Codecs, data: bytes
) -> None:
    with pytest.raises(MalformedMessageError, match="not Avro single-object encoding"):
        codecs.request.decode(data)
    with pytest.raises(MalformedMessageError):
        split_frame(data)


def test_unknown_fingerprint_is_an_unknown_schema(codecs: Codecs) -> None:
    data = codecs.request.encode(make_request())
    other = MAGIC + struct.pack("<q", 42) + data[HEADER_SIZE:]
    with pytest.raises(UnknownSchemaError, match="fingerprint 42 "):
        codecs.request.decode(other)


def test_every_truncation_of_the_body_is_malformed(codecs: Codecs) -> None:
    data = codecs.validated.encode(make_validated())
    for cut in range(HEADER_SIZE, len(data)):
        with pytest.raises(MalformedMessageError):
            codecs.validated.decode(data[:cut])


def test_truncated_body_names_the_record(codecs: Codecs) -> None:
    data = codecs.request.encode(make_request())
    with pytest.raises(MalformedMessageError, match="GenerationRequest body is truncated"):
        codecs.request.decode(data[:-5])


def test_trailing_bytes_are_malformed(codecs: Codecs) -> None:
    data = codecs.completed.encode(make_completed())
    with pytest.raises(MalformedMessageError, match="3 trailing bytes"):
        codecs.completed.decode(data + b"\x00\x00\x00")


def test_garbage_after_a_valid_header_is_malformed(codecs: Codecs) -> None:
    header = MAGIC + codecs.request.fingerprint
    for garbage in (b"\xff" * 30, b"\x80" * 12, b"\x02\xff\xfe\xfd"):
        with pytest.raises(MalformedMessageError):
            codecs.request.decode(header + garbage)


def test_flipped_bytes_never_escape_as_untyped_errors(codecs: Codecs) -> None:
    data = codecs.raw.encode(make_raw_with_blob())
    outcomes: set[str] = set()
    for i in range(HEADER_SIZE, len(data)):
        corrupted = bytearray(data)
        corrupted[i] ^= 0xFF
        try:  # anything but a CodecError escaping fails the test
            codecs.raw.decode(bytes(corrupted))
            outcomes.add("decoded")
        except CodecError as exc:
            outcomes.add(type(exc).__name__)
    assert "MalformedMessageError" in outcomes
    assert outcomes <= {"decoded", "MalformedMessageError", "RecordValidationError"}


def test_error_tree_and_codes() -> None:
    for cls in (MalformedMessageError, UnknownSchemaError, RecordValidationError):
        assert issubclass(cls, CodecError)
    assert MalformedMessageError.code == "codec.malformed"
    assert UnknownSchemaError.code == "codec.unknown_schema"
    assert RecordValidationError.code == "codec.invalid_record"
    assert (
        len(
            {
                CodecError.code,
                MalformedMessageError.code,
                UnknownSchemaError.code,
                RecordValidationError.code,
            }
        )
        == 4
    )


# --- writer -> reader resolution --------------------------------------------------------------


def old_request_datum() -> dict[str, Any]:
    """A GenerationRequest as a v0 producer (without callback_url/latency_budget_ms) wrote it."""
    datum = make_request().model_dump(mode="python")
    del datum["callback_url"]
    del datum["latency_budget_ms"]
    datum["kind"] = "TEXT"
    return datum


def test_older_writer_is_resolved_and_defaults_are_filled_in(codecs: Codecs) -> None:
    old = without_fields(schemas.load("GenerationRequest"), "callback_url", "latency_budget_ms")
    old_fp = codecs.store.register(old)
    assert old_fp != codecs.request.fingerprint
    data = frame(old_fp, old, old_request_datum())
    assert data[2:10] == old_fp

    decoded = codecs.request.decode(data)
    assert decoded.callback_url is None
    assert decoded.latency_budget_ms is None
    assert decoded.kind is AssetKind.TEXT
    assert decoded.request_id == "req-0001"
    assert decoded.variables == {"product": "kettle", "persona": "runner"}
    assert decoded.created_at == CREATED
    # Re-encoding writes the current schema, not the old one.
    assert codecs.request.encode(decoded)[2:10] == codecs.request.fingerprint


def test_older_writer_missing_a_field_with_a_non_null_default(codecs: Codecs) -> None:
    old = without_fields(schemas.load("GenerationRequest"), "attempt", "variables")
    old_fp = codecs.store.register(old)
    datum = make_request().model_dump(mode="python")
    del datum["attempt"], datum["variables"]
    decoded = codecs.request.decode(frame(old_fp, old, datum))
    assert decoded.attempt == 1
    assert decoded.variables == {}


def test_newer_writer_with_an_extra_field_is_read_without_it(codecs: Codecs) -> None:
    newer = schemas.load("GenerationRequest")
    newer["fields"] = [
        *newer["fields"],
        {"name": "shelf_days", "type": ["null", "int"], "default": None, "doc": "Shelf life."},
    ]
    fp = codecs.store.register(newer)
    record = make_request()
    decoded = codecs.request.decode(frame(fp, newer, {**record.model_dump(), "shelf_days": 7}))
    assert decoded == record


def test_older_writer_that_was_never_registered_is_unknown(codecs: Codecs) -> None:
    old = without_fields(schemas.load("GenerationRequest"), "callback_url", "latency_budget_ms")
    data = frame(schema_fingerprint(old), old, old_request_datum())
    with pytest.raises(UnknownSchemaError):
        codecs.request.decode(data)


def test_writer_without_a_required_field_cannot_be_resolved(codecs: Codecs) -> None:
    broken = without_fields(schemas.load("GenerationRequest"), "tenant")
    fp = codecs.store.register(broken)
    datum = make_request().model_dump()
    del datum["tenant"]
    with pytest.raises(UnknownSchemaError, match="cannot be resolved to GenerationRequest"):
        codecs.request.decode(frame(fp, broken, datum))


def test_writer_with_an_incompatible_type_cannot_be_resolved(codecs: Codecs) -> None:
    schema = schemas.load("GenerationRequest")
    schema["fields"] = [
        dict(f, type="long") if f["name"] == "tenant" else f for f in schema["fields"]
    ]
    fp = codecs.store.register(schema)
    datum = {**make_request().model_dump(), "tenant": 12}
    with pytest.raises(UnknownSchemaError):
        codecs.request.decode(frame(fp, schema, datum))


def test_a_record_of_another_contract_cannot_be_resolved(codecs: Codecs) -> None:
    """A RawAsset published to the requests topic: known writer, wrong record."""
    data = codecs.raw.encode(make_raw_with_blob())
    with pytest.raises(UnknownSchemaError):
        codecs.request.decode(data)


# --- model validation ------------------------------------------------------------------------


def test_reader_schema_newer_than_the_model_is_a_record_validation_error() -> None:
    """Decoding works, but the model forbids the extra field: RecordValidationError."""
    newer = schemas.load("GenerationRequest")
    newer["fields"] = [
        *newer["fields"],
        {"name": "shelf_days", "type": ["null", "int"], "default": None, "doc": "Shelf life."},
    ]
    codec = SingleObjectCodec(GenerationRequest, newer, SchemaStore())
    data = codec.encode_dict({**make_request().model_dump(), "shelf_days": 3})
    assert codec.decode_dict(data)["shelf_days"] == 3
    with pytest.raises(RecordValidationError, match="GenerationRequest is invalid at shelf_days"):
        codec.decode(data)


def test_out_of_range_avro_int_decodes_but_is_rejected_by_the_model(codecs: Codecs) -> None:
    """fastavro writes 2**40 into an Avro ``int`` (other languages then fail to read it), so the
    models bound AvroInt fields to 32 bits: such a record is a RecordValidationError."""
    data = codecs.request.encode_dict({**make_request().model_dump(), "attempt": 2**40})
    assert codecs.request.decode_dict(data)["attempt"] == 2**40
    with pytest.raises(RecordValidationError, match="GenerationRequest is invalid at attempt"):
        codecs.request.decode(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [("attempt", 2**31), ("attempt", -(2**31) - 1), ("latency_budget_ms", 2**31)],
)
def test_models_refuse_values_an_avro_int_cannot_hold(field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        make_request(**{field: value})


def test_models_accept_the_full_avro_int_range(codecs: Codecs) -> None:
    record = make_request(
        attempt=2**31 - 1,
        latency_budget_ms=-(2**31),
        constraints=Constraints(width=2**31 - 1, max_chars=0),
    )
    assert codecs.request.decode(codecs.request.encode(record)) == record


class PositiveAttemptRequest(GenerationRequest):
    """A stricter model over the same schema: Avro allows attempt 0, the model does not."""

    @field_validator("attempt")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("attempt must be at least 1")
        return value


def test_record_that_decodes_but_breaks_the_model_rules() -> None:
    codec = SingleObjectCodec(
        PositiveAttemptRequest, schemas.load("GenerationRequest"), SchemaStore()
    )
    data = codec.encode_dict({**make_request().model_dump(), "attempt": 0})
    assert codec.decode_dict(data)["attempt"] == 0
    with pytest.raises(RecordValidationError, match=r"at attempt: .*at least 1") as info:
        codec.decode(data)
    assert isinstance(info.value, CodecError)
    assert codec.decode(codec.encode_dict(make_request().model_dump())).attempt == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"request_id": 5}, "request_id", id="wrong-type"),
        pytest.param({"kind": "VIDEO"}, "VIDEO", id="unknown-enum-symbol"),
        pytest.param({"created_at": "yesterday"}, "created_at", id="not-a-timestamp"),
    ],
)
def test_encode_dict_rejects_data_the_schema_does_not_allow(
    codecs: Codecs, change: dict[str, Any], message: str
) -> None:
    datum = {**make_request().model_dump(), **change}
    with pytest.raises(RecordValidationError, match="cannot encode GenerationRequest"):
        codecs.request.encode_dict(datum)
    with pytest.raises(RecordValidationError, match=message):
        codecs.request.encode_dict(datum)


def test_encode_dict_rejects_a_missing_required_field(codecs: Codecs) -> None:
    datum = make_request().model_dump()
    del datum["tenant"]
    with pytest.raises(RecordValidationError, match="tenant"):
        codecs.request.encode_dict(datum)


def test_model_and_schema_mismatch_is_caught_when_a_codec_is_used() -> None:
    """A codec wired to the wrong model fails loudly, not silently."""

    class Other(AvroModel):
        name: str

    codec = SingleObjectCodec(Other, schemas.load("AssetCompleted"), SchemaStore())
    with pytest.raises(RecordValidationError):
        codec.encode(Other(name="x"))
