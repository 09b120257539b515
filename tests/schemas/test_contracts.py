"""The committed Avro contracts: valid, generated from the models, documented, evolvable."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import fastavro
import pytest
from pydantic import BaseModel, Field

import schemas
from schemas.avro_schema import AvroInt, SchemaGenerationError, avro_schema, avro_schema_json
from schemas.records import NAMESPACE, TOP_LEVEL

SCHEMA_DIR = Path(schemas.__file__).parent
AVSC_FILES = sorted(SCHEMA_DIR.glob("*.avsc"))
MODELS = {model.__name__: model for model in TOP_LEVEL}


def committed(name: str) -> dict[str, Any]:
    return schemas.load(name)


def walk_named(schema: Any) -> Iterator[dict[str, Any]]:
    """Every named type (record, enum, fixed) defined anywhere inside ``schema``."""
    if isinstance(schema, list):
        for member in schema:
            yield from walk_named(member)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error"):
            yield schema
            for field in schema["fields"]:
                yield from walk_named(field["type"])
        elif kind in ("enum", "fixed"):
            yield schema
        elif kind == "array":
            yield from walk_named(schema["items"])
        elif kind == "map":
            yield from walk_named(schema["values"])


def walk_fields(schema: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for named in walk_named(schema):
        if named["type"] == "record":
            for field in named["fields"]:
                yield f"{named['name']}.{field['name']}", field


def test_the_contracts_are_the_files_in_the_folder() -> None:
    assert {p.name for p in AVSC_FILES} == set(schemas.FILES.values())
    assert set(schemas.FILES) == set(MODELS)
    assert len(TOP_LEVEL) == 8


@pytest.mark.parametrize("path", AVSC_FILES, ids=lambda p: p.name)
def test_every_avsc_parses(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    parsed = fastavro.parse_schema(raw, named_schemas={})
    assert parsed["type"] == "record"
    assert parsed["name"] == f"{NAMESPACE}.{raw['name']}"


@pytest.mark.parametrize("name", sorted(schemas.FILES))
def test_committed_file_is_exactly_what_the_model_generates(name: str) -> None:
    text = (SCHEMA_DIR / schemas.FILES[name]).read_text(encoding="utf-8")
    assert text == avro_schema_json(MODELS[name]), (
        f"schemas/{schemas.FILES[name]} drifted from schemas.records.{name}: "
        "run 'assetline schemas export'"
    )
    assert committed(name) == avro_schema(MODELS[name])


@pytest.mark.parametrize("name", sorted(schemas.FILES))
def test_every_field_and_named_type_has_a_doc(name: str) -> None:
    schema = committed(name)
    fields = list(walk_fields(schema))
    assert fields
    undocumented = [where for where, f in fields if not str(f.get("doc", "")).strip()]
    assert undocumented == []
    nameless = [n["name"] for n in walk_named(schema) if not str(n.get("doc", "")).strip()]
    assert nameless == []


def test_nested_records_are_walked_too() -> None:
    """Guard the walker itself: the deepest contract has the request three levels down."""
    names = {n["name"] for n in walk_named(committed("ValidatedAsset"))}
    assert {
        "ValidatedAsset",
        "RawAsset",
        "GenerationRequest",
        "ModelSpec",
        "Constraints",
        "BlobRef",
        "GenerationError",
        "ValidationReport",
        "CheckResult",
        "AssetKind",
        "Verdict",
    } <= names
    assert "ValidatedAsset.raw" in dict(walk_fields(committed("ValidatedAsset")))
    assert "CheckResult.measured" in dict(walk_fields(committed("ValidatedAsset")))


@pytest.mark.parametrize("name", sorted(schemas.FILES))
def test_nullable_unions_put_null_first_and_default_to_null(name: str) -> None:
    unions = [
        (where, f) for where, f in walk_fields(committed(name)) if isinstance(f["type"], list)
    ]
    assert unions, "every contract has optional fields"
    for where, field in unions:
        assert field["type"][0] == "null", where
        assert len(field["type"]) == 2, where
        assert "default" in field, where
        assert field["default"] is None, where


@pytest.mark.parametrize("name", sorted(schemas.FILES))
def test_non_union_defaults_are_valid_for_their_type(name: str) -> None:
    """A default Avro cannot use (e.g. null for a string) breaks schema resolution."""
    checked: list[str] = []
    named: dict[str, Any] = {}
    fastavro.parse_schema(committed(name), named_schemas=named)  # a type may be used twice
    for where, field in walk_fields(committed(name)):
        if "default" not in field or isinstance(field["type"], list):
            continue
        checked.append(where)
        record = {
            "type": "record",
            "name": "DefaultProbe",
            "fields": [{"name": "value", "type": field["type"]}],
        }
        parsed = fastavro.parse_schema(record, named_schemas=dict(named))
        assert fastavro.validate({"value": field["default"]}, parsed, raise_errors=False), where
    # ReviewDecision is new and has only required fields and nullable ones; every older
    # contract gained defaulted fields while evolving, and those are the ones at risk.
    assert checked or name == "ReviewDecision"


@pytest.mark.parametrize("name", sorted(schemas.FILES))
def test_every_named_type_lives_in_the_v1_namespace(name: str) -> None:
    schema = committed(name)
    assert schema["namespace"] == "io.assetline.v1" == NAMESPACE
    named: dict[str, Any] = {}
    fastavro.parse_schema(schema, named_schemas=named)
    assert named
    outside = [full for full in named if not full.startswith("io.assetline.v1.")]
    assert outside == []
    for record in walk_named(schema):
        if record["type"] == "record":
            assert record.get("namespace") == NAMESPACE, record["name"]


def test_top_level_records_are_named_after_their_models() -> None:
    for name, model in MODELS.items():
        schema = committed(name)
        assert schema["name"] == model.__name__
        assert [f["name"] for f in schema["fields"]] == list(model.model_fields)


def test_avro_int_fields_are_32_bit_and_others_64_bit() -> None:
    fields = dict(walk_fields(committed("GenerationRequest")))
    assert fields["GenerationRequest.attempt"]["type"] == "int"
    assert fields["GenerationRequest.latency_budget_ms"]["type"] == ["null", "int"]
    assert fields["Constraints.width"]["type"] == ["null", "int"]
    raw = dict(walk_fields(committed("RawAsset")))
    assert raw["BlobRef.size"]["type"] == "long"
    assert raw["RawAsset.generated_at"]["type"] == {
        "type": "long",
        "logicalType": "timestamp-millis",
    }


def test_every_field_added_with_a_default_keeps_backward_compatibility() -> None:
    """Optional fields and fields with defaults can be missing in old records."""
    fields = dict(walk_fields(committed("GenerationRequest")))
    for optional in ("callback_url", "latency_budget_ms", "brand_profile_id"):
        assert fields[f"GenerationRequest.{optional}"]["default"] is None
    assert fields["GenerationRequest.attempt"]["default"] == 1
    assert fields["GenerationRequest.variables"]["default"] == {}
    priority = fields["GenerationRequest.priority"]
    assert priority["default"] == "NORMAL"
    # the enum's own default lets readers take symbols added later
    assert priority["type"]["symbols"] == ["LOW", "NORMAL", "HIGH"]
    assert priority["type"]["default"] == "NORMAL"


# --- generation rules --------------------------------------------------------------------------


class WithSet(BaseModel):
    tags: set[str]


class WithIntOrStr(BaseModel):
    value: int | str


class WithTuple(BaseModel):
    pair: tuple[int, int]


class WithIntKeys(BaseModel):
    counts: dict[int, str]


@pytest.mark.parametrize(
    "model",
    [WithSet, WithIntOrStr, WithTuple, WithIntKeys],
    ids=["set", "int-or-str", "tuple", "int-keys"],
)
def test_unsupported_types_are_rejected(model: type[BaseModel]) -> None:
    with pytest.raises(SchemaGenerationError):
        avro_schema(model)


def test_schema_generation_error_is_a_type_error() -> None:
    assert issubclass(SchemaGenerationError, TypeError)
    with pytest.raises(SchemaGenerationError, match=re.escape("only 'X | None' unions")):
        avro_schema(WithIntOrStr)


def test_avro_int_on_a_non_int_is_rejected() -> None:
    class Wrong(BaseModel):
        name: Annotated[str, AvroInt] = Field("x", description="not an int")

    with pytest.raises(SchemaGenerationError, match="AvroInt applies to int fields"):
        avro_schema(Wrong)


def test_generation_of_a_small_model() -> None:
    class Inner(BaseModel):
        """An inner record."""

        flag: bool = Field(False, description="A flag.")

    class Outer(BaseModel):
        """An outer record."""

        count: Annotated[int, AvroInt] = Field(description="A count.")
        first: Inner = Field(description="Defined here.")
        second: Inner | None = Field(None, description="Referenced by name.")
        names: list[str] = Field(default_factory=list, description="Names.")

    schema = avro_schema(Outer)
    assert schema["name"] == "Outer"
    assert schema["doc"] == "An outer record."
    fields = {f["name"]: f for f in schema["fields"]}
    assert fields["count"] == {"name": "count", "type": "int", "doc": "A count."}
    assert fields["first"]["type"]["type"] == "record"
    assert fields["first"]["type"]["fields"] == [
        {"name": "flag", "type": "boolean", "doc": "A flag.", "default": False}
    ]
    assert "default" not in fields["first"]  # a record factory has no plain-data default
    assert fields["second"]["type"] == ["null", "Inner"]  # defined once, then referenced
    assert fields["second"]["default"] is None
    assert fields["names"]["default"] == []
    fastavro.parse_schema(schema, named_schemas={})


def test_an_enum_default_comes_from_avro_default_and_must_be_a_symbol() -> None:
    class Lane(StrEnum):
        """A lane."""

        __avro_default__ = "MID"

        SLOW = "SLOW"
        MID = "MID"

    class WithLane(BaseModel):
        lane: Lane = Field(Lane.MID, description="A lane.")

    (field,) = avro_schema(WithLane)["fields"]
    assert field["type"]["default"] == "MID"
    assert field["default"] == "MID"

    class Bad(StrEnum):
        """A lane whose default is no symbol."""

        __avro_default__ = "FAST"

        SLOW = "SLOW"

    class WithBad(BaseModel):
        lane: Bad = Field(Bad.SLOW, description="A lane.")

    with pytest.raises(SchemaGenerationError, match="'FAST' is no symbol"):
        avro_schema(WithBad)
