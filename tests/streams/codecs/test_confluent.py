"""Confluent framing in the codec: written per topic, both framings read, precise errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from schemas.records import AssetKind, GenerationRequest
from streams.codecs import (
    HEADER_SIZE,
    VALUE_SCHEMA_ID_HEADER,
    Codecs,
    MalformedMessageError,
    RegistryError,
    UnknownSchemaIdError,
    UnsupportedFramingError,
    WireFormat,
    confluent_prefix,
    split_confluent,
)

#: Fixed, so two calls build equal records (the default is "now", which can tick in between).
CREATED = datetime(2024, 5, 17, 9, 30, 15, 123000, tzinfo=UTC)


def make_request() -> GenerationRequest:
    return GenerationRequest(
        request_id="r-1",
        idempotency_key="k-1",
        tenant="acme",
        campaign_id="spring",
        kind=AssetKind.TEXT,
        prompt_template="Headline for ${persona}",
        variables={"persona": "hiker"},
        created_at=CREATED,
    )


@pytest.fixture
def confluent() -> Codecs:
    codecs = Codecs.load(wire_formats={"requests": "confluent"})
    codecs.request.bind_registry_id(4242)
    return codecs


def test_confluent_frame_is_zero_big_endian_id_then_the_same_body(confluent: Codecs) -> None:
    single = Codecs.load(confluent.store).request.encode(make_request())
    data = confluent.request.encode(make_request())
    assert data[:5] == b"\x00\x00\x00\x10\x92" == confluent_prefix(4242)
    assert data[5:] == single[HEADER_SIZE:]
    schema_id, body = split_confluent(data)
    assert (schema_id, bytes(body)) == (4242, single[HEADER_SIZE:])


def test_one_codec_reads_both_framings(confluent: Codecs) -> None:
    single = Codecs.load(confluent.store).request
    assert single.wire_format is WireFormat.SINGLE_OBJECT
    for data in (single.encode(make_request()), confluent.request.encode(make_request())):
        assert single.decode(data) == confluent.request.decode(data) == make_request()


def test_unknown_id_raises_with_the_id_for_the_stage_to_fetch(confluent: Codecs) -> None:
    body = confluent.request.encode(make_request())[5:]
    with pytest.raises(UnknownSchemaIdError, match="id 77 ") as caught:
        confluent.request.decode(confluent_prefix(77) + body)
    assert caught.value.schema_id == 77
    assert caught.value.code == "codec.unknown_schema_id"


def test_confluent_writer_without_registry_id_refuses_to_encode() -> None:
    codecs = Codecs.load(wire_formats={"completed": "confluent"})
    assert codecs.request.encode(make_request())[:2] == b"\xc3\x01"  # other topics unchanged
    with pytest.raises(RegistryError, match="no registry id yet"):
        codecs.completed.encode_dict({})


@pytest.mark.parametrize("data", [b"\x00", b"\x00\x00\x00\x01"], ids=["1", "4"])
def test_short_confluent_frame_is_malformed(confluent: Codecs, data: bytes) -> None:
    with pytest.raises(MalformedMessageError, match="00 \\+ 4-byte schema id"):
        confluent.request.decode(data)


def test_guid_magic_byte_is_rejected_with_its_own_code(confluent: Codecs) -> None:
    data = b"\x01" + uuid.uuid4().bytes + confluent.request.encode(make_request())[5:]
    with pytest.raises(UnsupportedFramingError, match=r"GUID framing .* in the payload") as caught:
        confluent.request.decode(data)
    assert caught.value.code == "codec.unsupported_framing"


def test_header_schema_id_reads_a_bare_body(confluent: Codecs) -> None:
    body = confluent.request.encode(make_request())[5:]
    headers = [("trace", b"x"), (VALUE_SCHEMA_ID_HEADER, confluent_prefix(4242))]
    assert confluent.request.decode(body, headers) == make_request()


def test_header_schema_guid_is_rejected(confluent: Codecs) -> None:
    body = confluent.request.encode(make_request())[5:]
    headers = [(VALUE_SCHEMA_ID_HEADER, b"\x01" + uuid.uuid4().bytes)]
    with pytest.raises(UnsupportedFramingError, match="__value_schema_id header"):
        confluent.request.decode(body, headers)


def test_garbage_schema_id_header_is_malformed(confluent: Codecs) -> None:
    with pytest.raises(MalformedMessageError, match="__value_schema_id header is not"):
        confluent.request.decode(b"\x02", [(VALUE_SCHEMA_ID_HEADER, b"\x07\x07")])


def test_topics_sharing_a_contract_must_agree_on_the_framing() -> None:
    with pytest.raises(ValueError, match="same wire format"):
        Codecs.load(wire_formats={"approved": "confluent"})
    codecs = Codecs.load(
        wire_formats={"approved": "confluent", "rejected": "confluent", "review": "confluent"}
    )
    assert codecs.validated.wire_format is WireFormat.CONFLUENT


def test_unknown_topic_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown topic"):
        Codecs.load(wire_formats={"complete": "confluent"})
