"""The JSON document builder's size cap (issue 12 #4): a schema cannot make it build a bomb."""

from __future__ import annotations

import json
import time
import tracemalloc
from typing import Any

import jsonschema
import pytest

from agents.inference.providers.base import ProviderError
from agents.inference.providers.offline import json_document
from agents.inference.providers.offline.json_document import render_json

MIB = 1024 * 1024
#: The schema from the issue: 9,000 strings of 100,000 characters, a 900 MB document.
BOMB = {"type": "array", "minItems": 9000, "items": {"type": "string", "minLength": 100_000}}


def _refused(schema: dict[str, Any], variables: dict[str, str] | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        render_json("p", variables or {}, json.dumps(schema), 7, max_bytes=2 * MIB)
    return caught.value


def test_the_size_bomb_is_refused_from_its_minimum_size_without_building(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_building(*args: Any) -> Any:
        raise AssertionError("nothing may be built for a schema whose minimum is over the cap")

    monkeypatch.setattr(json_document, "_instance", no_building)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        error = _refused(BOMB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.code == "asset.too_large"
    assert "at least 900027002 bytes" in str(error)
    assert not error.retryable
    assert peak < MIB  # was 900 MB of document (3.5 GB RSS)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "schema",
    [
        # Nested: 100 objects, each requiring 100 strings of 1,000 characters (10 MB).
        {
            "type": "array",
            "minItems": 100,
            "items": {
                "type": "object",
                "required": ["a"],
                "properties": {
                    "a": {
                        "type": "array",
                        "minItems": 100,
                        "items": {"type": "string", "minLength": 1000},
                    }
                },
            },
        },
        # Through a $ref and prefixItems.
        {
            "$defs": {"big": {"type": "string", "minLength": 99_000}},
            "type": "array",
            "prefixItems": [{"$ref": "#/$defs/big"}],
            "minItems": 30,
            "items": {"$ref": "#/$defs/big"},
        },
        # Through allOf and the first oneOf branch.
        {"allOf": [{"type": "array", "minItems": 50}], "items": {"oneOf": [BOMB["items"]]}},
    ],
)
def test_large_minimums_are_refused_through_every_keyword(schema: dict[str, Any]) -> None:
    error = _refused(schema)
    assert error.code == "asset.too_large"
    assert "at least" in str(error)


def test_building_stops_at_the_cap_when_the_minimum_looks_small() -> None:
    """No minLength, but each item copies a 200 kB variable: 9,000 of them is 1.8 GB."""
    schema = {"type": "array", "minItems": 9000, "items": {"type": "string"}}
    tracemalloc.start()
    try:
        error = _refused(schema, {"": "x" * 200_000})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.code == "asset.too_large"
    assert "exceeds the cap" in str(error)
    assert peak < 8 * MIB


def test_documents_within_the_cap_are_built_as_before() -> None:
    schema = {
        "type": "array",
        "minItems": 10,
        "items": {"type": "string", "minLength": 100_000},
    }  # 1 MB: under a 2 MiB cap
    document = json.loads(render_json("p", {}, json.dumps(schema), 7, max_bytes=2 * MIB))
    jsonschema.Draft202012Validator(schema).validate(document)
    assert json.loads(render_json("p", {}, json.dumps(schema), 7)) == document  # no cap


def test_a_recursive_schema_still_ends_on_the_depth_limit() -> None:
    schema = {
        "$defs": {
            "n": {"type": "object", "required": ["n"], "properties": {"n": {"$ref": "#/$defs/n"}}}
        },
        "$ref": "#/$defs/n",
    }
    with pytest.raises(ProviderError) as caught:
        render_json("p", {}, json.dumps(schema), 7, max_bytes=2 * MIB)
    assert caught.value.code == "provider.bad_constraints"


@pytest.mark.parametrize("length", [29, 10_000])
def test_a_backtracking_pattern_is_never_run_by_the_builder(length: int) -> None:
    """Issue 12 #3: the builder ignores ``pattern``/``patternProperties``, so ``^(a+)+$`` costs
    nothing here (validation decides it, on RE2)."""
    value = "a" * length + "!"
    schema = {
        "type": "object",
        "required": ["v", value],
        "properties": {"v": {"type": "string", "pattern": "^(a+)+$"}, value: {"const": value}},
        "patternProperties": {"^(a|a)*$": {"type": "string", "pattern": "^(a+)+$"}},
    }
    started = time.perf_counter()
    document = json.loads(render_json("p", {}, json.dumps(schema), 7, max_bytes=2 * MIB))
    assert time.perf_counter() - started < 1.0
    assert document[value] == value
