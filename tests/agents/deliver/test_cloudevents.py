"""Completion events carry CloudEvents attributes (Kafka binding, binary mode)."""

from __future__ import annotations

from datetime import UTC, datetime

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event

from agents.deliver.cloudevents import (
    CONTENT_TYPE,
    EVENT_TYPE,
    completion_headers,
    data_schema,
    event_source,
)
from schemas.records import AssetCompleted, AssetKind, CompletionStatus
from streams.codecs import Codecs

DONE = AssetCompleted(
    request_id="req-42",
    idempotency_key="k-42",
    tenant="acme",
    campaign_id="spring",
    kind=AssetKind.IMAGE,
    attempt=2,
    status=CompletionStatus.DELIVERED,
    location="file:///d/acme/spring/req-42.png",
    completed_at=datetime(2026, 11, 24, 21, 30, 5, 123000, tzinfo=UTC),
)


def headers() -> list[tuple[str, bytes]]:
    codec = Codecs.load().completed
    return completion_headers(
        DONE, source=event_source("assetline"), dataschema=data_schema(codec.fingerprint)
    )


def test_headers_are_the_binary_mode_attributes() -> None:
    found = dict(headers())
    assert found["ce_specversion"] == b"1.0"
    assert found["ce_id"] == b"req-42/2"
    assert found["ce_source"] == b"/assetline/assetline"
    assert found["ce_type"] == EVENT_TYPE.encode()
    assert found["ce_time"] == b"2026-11-24T21:30:05.123000Z"
    assert found["ce_subject"] == b"req-42"
    assert found["content-type"] == CONTENT_TYPE.encode()
    assert found["ce_dataschema"].startswith(b"urn:assetline:schema:")


def test_the_cloudevents_sdk_parses_a_completion_message() -> None:
    codec = Codecs.load().completed
    value = codec.encode(DONE)
    message = KafkaMessage(headers=dict(headers()), key=b"req-42", value=value)
    event = from_binary_event(message)
    assert event.get_id() == "req-42/2"
    assert event.get_type() == EVENT_TYPE
    assert event.get_source() == "/assetline/assetline"
    assert event.get_time() == DONE.completed_at
    assert event.get_datacontenttype() == CONTENT_TYPE
    assert event.get_extension("partitionkey") == "req-42"
    data = event.get_data()
    assert isinstance(data, bytes)
    assert codec.decode(data) == DONE


def test_the_id_is_stable_per_request_and_attempt() -> None:
    again = DONE.model_copy(update={"completed_at": datetime(2027, 1, 1, tzinfo=UTC)})
    first = dict(headers())["ce_id"]
    second = dict(completion_headers(again, source="/x", dataschema="urn:x"))["ce_id"]
    assert first == second
    later = dict(
        completion_headers(DONE.model_copy(update={"attempt": 3}), source="/x", dataschema="urn:x")
    )["ce_id"]
    assert later == b"req-42/3"
