"""The contracts released in v0.1.0 (``schemas/releases/0.1.0``) stay readable by today's.

Events written by a v1 producer sit in topics for days and get replayed: today's reader must
decode them, filling every field added since from its default.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import schemas
from schemas.records import (
    AssetCompleted,
    AssetKind,
    CompletionStatus,
    GenerationError,
    GenerationRequest,
    Priority,
    RawAsset,
)
from streams.codecs import Codecs, SchemaStore, SingleObjectCodec

V1 = Path(schemas.__file__).parent / "releases" / "0.1.0"


def v1_schema(file: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((V1 / file).read_text(encoding="utf-8"))
    return schema


def request() -> GenerationRequest:
    return GenerationRequest(
        request_id="r-1",
        idempotency_key="k-1",
        tenant="acme",
        campaign_id="spring",
        kind=AssetKind.TEXT,
        prompt_template="Hello ${name}",
        variables={"name": "Ada"},
        created_at=datetime(2026, 11, 1, tzinfo=UTC),
    )


def written_by_v1(file: str, record: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """Encode with the v1 writer codec, as a v1 producer would have (extra keys ignored)."""
    store = SchemaStore()
    schema = v1_schema(file)
    writer = SingleObjectCodec(AssetCompleted, schema, store)  # model unused by encode_dict
    return schema, writer.encode_dict(record)


def test_a_v1_raw_asset_reads_with_todays_schema_and_defaults() -> None:
    raw = RawAsset(
        request=request(),
        error=GenerationError(code="provider.timeout", message="slow", retryable=True),
        provider="openai",
        model_version="gpt-4o-mini-2024-07-18",
        latency_ms=12.5,
        cost=0.25,
    )
    datum = raw.model_dump(mode="python")
    for added in ("alias", "attempts", "fallback"):
        datum.pop(added)
    v1, data = written_by_v1("raw_asset.avsc", datum)
    codecs = Codecs.load(SchemaStore())
    codecs.store.register(v1)
    decoded = codecs.raw.decode(data)
    assert decoded.alias is None
    assert decoded.attempts == []
    assert decoded.fallback is False
    assert decoded.model_version == "gpt-4o-mini-2024-07-18"
    assert decoded.cost == pytest.approx(0.25)


def test_a_v1_completion_reads_with_todays_schema() -> None:
    done = AssetCompleted(
        request_id="r-1",
        idempotency_key="k-1",
        tenant="acme",
        campaign_id="spring",
        kind=AssetKind.TEXT,
        status=CompletionStatus.DELIVERED,
    )
    datum = done.model_dump(mode="python")
    datum.pop("alias")
    datum.pop("attempts")
    v1, data = written_by_v1("asset_completed.avsc", datum)
    codecs = Codecs.load(SchemaStore())
    codecs.store.register(v1)
    decoded = codecs.completed.decode(data)
    assert decoded.status is CompletionStatus.DELIVERED
    assert decoded.attempts == []


def test_fallback_is_a_new_symbol_appended_to_the_status_enum() -> None:
    """Appending keeps every v1 symbol's meaning; v1 readers must upgrade to see FALLBACK."""
    v1_symbols = _status_symbols(v1_schema("asset_completed.avsc"))
    today = _status_symbols(schemas.load("AssetCompleted"))
    assert today[: len(v1_symbols)] == v1_symbols
    assert today[len(v1_symbols) :] == ["FALLBACK"]


def _status_symbols(schema: dict[str, Any]) -> list[str]:
    for field in schema["fields"]:
        if field["name"] == "status":
            symbols: list[str] = field["type"]["symbols"]
            return symbols
    raise AssertionError("no status field")


def test_a_v1_request_without_priority_reads_as_normal() -> None:
    """Encoded with the released writer schema, decoded with today's: the default fills in."""
    datum = request().model_dump(mode="python")
    for added in ("feedback", "prior_cost", "priority"):
        datum.pop(added)
    v1, data = written_by_v1("generation_request.avsc", datum)
    assert "priority" not in [f["name"] for f in v1["fields"]]
    codecs = Codecs.load(SchemaStore())
    codecs.store.register(v1)
    decoded = codecs.request.decode(data)
    assert decoded.priority is Priority.NORMAL
    assert decoded.request_id == "r-1"
    assert decoded.variables == {"name": "Ada"}


def test_priority_round_trips_with_todays_schema() -> None:
    codecs = Codecs.load(SchemaStore())
    for priority in Priority:
        sent = request().model_copy(update={"priority": priority})
        assert codecs.request.decode(codecs.request.encode(sent)) == sent


def test_a_priority_symbol_added_later_reads_as_the_enum_default() -> None:
    """A newer producer's unknown symbol resolves to NORMAL instead of failing the decode."""
    future = schemas.load("GenerationRequest")
    for field in future["fields"]:
        if field["name"] == "priority":
            assert field["type"]["default"] == "NORMAL"
            field["type"]["symbols"].append("URGENT")
    datum = request().model_dump(mode="python")
    datum["priority"] = "URGENT"
    store = SchemaStore()
    store.register(future)
    data = SingleObjectCodec(AssetCompleted, future, store).encode_dict(datum)
    codecs = Codecs.load(store)
    assert codecs.request.decode(data).priority is Priority.NORMAL
