"""BACKWARD compatibility: a new reader schema must read data written with the released one."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import schemas
from schemas.compatibility import Problem, backward_problems, resolution_problems, sample_problems

NS = "io.example"


def record(*fields: dict[str, Any], name: str = "Thing", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": NS, "fields": list(fields), **extra}


def field(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def color(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Color", "symbols": list(symbols), **extra}


BASE = record(field("id", "string"), field("count", "int"), field("color", color("RED", "BLUE")))


def paths(problems: list[Problem]) -> list[str]:
    return [p.path for p in problems]


def test_identical_schemas_are_compatible() -> None:
    assert backward_problems(BASE, copy.deepcopy(BASE)) == []


def test_a_new_field_with_a_default_is_compatible() -> None:
    new = record(*BASE["fields"], field("note", ["null", "string"], default=None))
    assert backward_problems(BASE, new) == []


def test_a_new_field_without_a_default_breaks_old_data() -> None:
    new = record(*BASE["fields"], field("note", "string"))
    problems = resolution_problems(BASE, new)
    assert problems == [Problem("note", "new field without a default")]
    # fastavro agrees on real records, independently of the rule walk
    assert sample_problems(BASE, new), "fastavro must fail to read old records"


def test_a_removed_field_is_compatible_for_readers() -> None:
    new = record(field("id", "string"), field("color", color("RED", "BLUE")))
    assert backward_problems(BASE, new) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [("int", "long"), ("int", "double"), ("long", "float"), ("float", "double"),
     ("string", "bytes")],
)  # fmt: skip
def test_promotions_are_compatible(old: str, new: str) -> None:
    assert backward_problems(record(field("x", old)), record(field("x", new))) == []


def test_bytes_to_string_is_a_spec_promotion_that_samples_catch() -> None:
    # The resolution rules allow it, but bytes that are not UTF-8 fail to read as a string.
    old, new = record(field("x", "bytes")), record(field("x", "string"))
    assert resolution_problems(old, new) == []
    (problem,) = backward_problems(old, new)
    assert problem.path == "sample #0"
    assert "utf-8" in problem.message


@pytest.mark.parametrize(("old", "new"), [("long", "int"), ("double", "float"), ("int", "string")])
def test_narrowing_or_changing_a_type_breaks(old: str, new: str) -> None:
    problems = resolution_problems(record(field("x", old)), record(field("x", new)))
    assert problems == [Problem("x", f"type changed from {old} to {new}")]


def test_removing_an_enum_symbol_breaks_unless_the_enum_has_a_default() -> None:
    old = record(field("color", color("RED", "BLUE", "GREEN")))
    strict = record(field("color", color("RED", "BLUE")))
    assert resolution_problems(old, strict) == [
        Problem("color", "enum symbols removed without a default: ['GREEN']")
    ]
    lenient = record(field("color", color("RED", "BLUE", default="RED")))
    assert backward_problems(old, lenient) == []


def test_adding_an_enum_symbol_is_compatible() -> None:
    new = record(field("id", "string"), field("count", "int"),
                 field("color", color("RED", "BLUE", "GREEN")))  # fmt: skip
    assert backward_problems(BASE, new) == []


def test_widening_a_union_is_compatible_and_narrowing_breaks() -> None:
    narrow = record(field("v", ["null", "string"]))
    wide = record(field("v", ["null", "string", "long"]))
    assert backward_problems(narrow, wide) == []
    problems = resolution_problems(wide, narrow)
    assert paths(problems) == ["v"]
    assert "long is no longer in the union" in problems[0].message


def test_a_plain_type_may_become_a_union_that_contains_it() -> None:
    optional = record(field("v", ["null", "string"], default=None))
    assert backward_problems(record(field("v", "string")), optional) == []


def test_renaming_a_field_needs_an_alias() -> None:
    old = record(field("count", "int"))
    renamed = record(field("total", "int"))
    assert resolution_problems(old, renamed) == [Problem("total", "new field without a default")]
    aliased = record(field("total", "int", aliases=["count"]))
    assert backward_problems(old, aliased) == []


def test_renaming_a_record_needs_an_alias() -> None:
    old = record(field("x", "int"))
    assert paths(resolution_problems(old, record(field("x", "int"), name="Other"))) == [""]
    assert (
        resolution_problems(old, record(field("x", "int"), name="Other", aliases=["Thing"])) == []
    )


def test_nested_paths_name_the_field_that_breaks() -> None:
    inner_old = record(field("w", "int"), name="Size")
    inner_new = record(field("w", "string"), name="Size")
    old = record(field("sizes", {"type": "array", "items": inner_old}))
    new = record(field("sizes", {"type": "array", "items": inner_new}))
    assert resolution_problems(old, new) == [
        Problem("sizes[].w", "type changed from int to string")
    ]


def test_map_values_and_fixed_sizes_are_checked() -> None:
    old = record(field("m", {"type": "map", "values": "long"}),
                 field("f", {"type": "fixed", "name": "Hash", "size": 8}))  # fmt: skip
    new = record(field("m", {"type": "map", "values": "int"}),
                 field("f", {"type": "fixed", "name": "Hash", "size": 16}))  # fmt: skip
    assert resolution_problems(old, new) == [
        Problem("f", "fixed size changed from 8 to 16"),
        Problem("m{}", "type changed from long to int"),
    ]


def test_a_changed_logical_type_is_reported() -> None:
    millis = {"type": "long", "logicalType": "timestamp-millis"}
    micros = {"type": "long", "logicalType": "timestamp-micros"}
    problems = resolution_problems(record(field("t", millis)), record(field("t", micros)))
    assert problems == [
        Problem("t", "logical type changed from timestamp-millis to timestamp-micros")
    ]


def test_recursive_records_terminate() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "fields": [field("value", "int"), field("next", ["null", "Node"], default=None)],
    }
    assert backward_problems(node, copy.deepcopy(node)) == []


def test_todays_contracts_read_every_released_contract() -> None:
    root = Path(schemas.__file__).parent
    releases = sorted(p for p in (root / "releases").iterdir() if p.is_dir())
    assert releases, "schemas/releases must hold at least the first release"
    for release in releases:
        for released in release.glob("*.avsc"):
            old = json.loads(released.read_text(encoding="utf-8"))
            new = json.loads((root / released.name).read_text(encoding="utf-8"))
            assert backward_problems(old, new) == [], f"{release.name}/{released.name}"
