"""Is a new contract BACKWARD compatible with the released one (can today's reader read it)?

Events written with a released schema sit in topics for days and get replayed, so every
``.avsc`` in the working tree must read data written with the previous release. Two checks:

- the Avro specification's schema-resolution rules, walked statically, which name the exact
  field and rule that breaks (:func:`resolution_problems`);
- fastavro itself, reading sample records written with the released schema through the new
  one (:func:`sample_problems`), so a rule this walk gets wrong still cannot slip through.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
from fastavro.utils import generate_many

#: Writer type -> reader types it may be read as (Avro spec, "Schema Resolution").
PROMOTIONS: Mapping[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "enum", "fixed", "error"})


@dataclass(frozen=True, order=True)
class Problem:
    """One reason the reader cannot read the writer's data; ``path`` is the field path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class _Side:
    """A parsed schema and its named types (fastavro writes later uses as full names)."""

    schema: Any
    names: dict[str, Any]

    @classmethod
    def parse(cls, schema: Any) -> _Side:
        names: dict[str, Any] = {}
        return cls(fastavro.parse_schema(schema, named_schemas=names), names)

    def deref(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema in self.names:
            return self.names[schema]
        return schema


def _type_of(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    kind = schema["type"]
    return kind if isinstance(kind, str) else _type_of(kind)


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _describe(schema: Any) -> str:
    kind = _type_of(schema)
    if kind in NAMED:
        return f"{kind} {_short(schema['name'])}"
    if kind == "union":
        return "[" + ", ".join(_describe(branch) for branch in schema) + "]"
    return kind


def _names_match(writer: Any, reader: Any) -> bool:
    aliases = {_short(a) for a in reader.get("aliases", ())}
    return _short(writer["name"]) in {_short(reader["name"]), *aliases}


class _Walk:
    def __init__(self, writer: _Side, reader: _Side) -> None:
        self.writer = writer
        self.reader = reader
        self.problems: list[Problem] = []
        self._seen: set[tuple[str, str]] = set()  # recursive records: compare each pair once

    def check(self, w: Any, r: Any, path: str) -> bool:
        """Record problems for ``w`` read as ``r``; True when the data resolves."""
        w, r = self.writer.deref(w), self.reader.deref(r)
        wk, rk = _type_of(w), _type_of(r)
        if wk == "union":
            ok = True
            for branch in w:
                # every branch the writer may have written must be readable
                ok = self._branch_readable(branch, r, path) and ok
            return ok
        if rk == "union":
            return self._readable_by_union(w, r, path)
        if wk in PRIMITIVES or rk in PRIMITIVES:
            return self._primitive(w, r, wk, rk, path)
        if wk != rk and not ({wk, rk} <= {"record", "error"}):
            return self._fail(path, f"type changed from {_describe(w)} to {_describe(r)}")
        if wk in ("record", "error"):
            return self._record(w, r, path)
        if wk == "enum":
            return self._enum(w, r, path)
        if wk == "fixed":
            return self._fixed(w, r, path)
        if wk == "array":
            return self.check(w["items"], r["items"], f"{path}[]")
        if wk == "map":
            return self.check(w["values"], r["values"], f"{path}{{}}")
        return self._fail(path, f"unknown type {wk}")

    def _fail(self, path: str, message: str) -> bool:
        self.problems.append(Problem(path, message))
        return False

    def _quietly(self, w: Any, r: Any, path: str) -> bool:
        probe = _Walk(self.writer, self.reader)
        probe._seen = set(self._seen)
        return probe.check(w, r, path)

    def _branch_readable(self, branch: Any, r: Any, path: str) -> bool:
        if _type_of(self.reader.deref(r)) == "union":
            return self._readable_by_union(branch, r, path)
        return self.check(branch, r, path)

    def _readable_by_union(self, w: Any, union: list[Any], path: str) -> bool:
        if any(self._quietly(w, branch, path) for branch in union):
            return True
        return self._fail(
            path, f"{_describe(self.writer.deref(w))} is no longer in the union {_describe(union)}"
        )

    def _primitive(self, w: Any, r: Any, wk: str, rk: str, path: str) -> bool:
        if wk == rk or rk in PROMOTIONS.get(wk, frozenset()):
            return self._logical(w, r, path)
        return self._fail(path, f"type changed from {_describe(w)} to {_describe(r)}")

    def _logical(self, w: Any, r: Any, path: str) -> bool:
        wl = w.get("logicalType") if isinstance(w, dict) else None
        rl = r.get("logicalType") if isinstance(r, dict) else None
        if wl != rl:
            # The bytes still decode, but e.g. millis read as micros is a silent data bug.
            return self._fail(path, f"logical type changed from {wl} to {rl}")
        return True

    def _record(self, w: Any, r: Any, path: str) -> bool:
        if not _names_match(w, r):
            return self._fail(
                path, f"record renamed from {_short(w['name'])} to {_short(r['name'])} "
                "without an alias"
            )  # fmt: skip
        key = (w["name"], r["name"])
        if key in self._seen:
            return True
        self._seen.add(key)
        written = {f["name"]: f for f in w["fields"]}
        for field in w["fields"]:
            for alias in field.get("aliases", ()):
                written.setdefault(alias, field)
        ok = True
        for field in r["fields"]:
            names = [field["name"], *field.get("aliases", ())]
            source = next((written[n] for n in names if n in written), None)
            where = f"{path}.{field['name']}" if path else field["name"]
            if source is None:
                if "default" not in field:
                    ok = self._fail(where, "new field without a default")
                continue
            ok = self.check(source["type"], field["type"], where) and ok
        return ok

    def _enum(self, w: Any, r: Any, path: str) -> bool:
        if not _names_match(w, r):
            return self._fail(path, f"enum renamed from {_short(w['name'])} to {_short(r['name'])}")
        missing = [s for s in w["symbols"] if s not in r["symbols"]]
        if missing and "default" not in r:
            return self._fail(path, f"enum symbols removed without a default: {missing}")
        return True

    def _fixed(self, w: Any, r: Any, path: str) -> bool:
        if not _names_match(w, r):
            return self._fail(
                path, f"fixed renamed from {_short(w['name'])} to {_short(r['name'])}"
            )
        if w["size"] != r["size"]:
            return self._fail(path, f"fixed size changed from {w['size']} to {r['size']}")
        return True


def resolution_problems(writer: Any, reader: Any) -> list[Problem]:
    """Why ``reader`` cannot read data written with ``writer``, by the Avro resolution rules."""
    walk = _Walk(_Side.parse(writer), _Side.parse(reader))
    walk.check(walk.writer.schema, walk.reader.schema, "")
    return sorted(set(walk.problems))


def sample_problems(writer: Any, reader: Any, *, count: int = 200, seed: int = 0) -> list[Problem]:
    """Write ``count`` generated records with ``writer`` and read each through ``reader``."""
    parsed_writer = fastavro.parse_schema(writer, named_schemas={})
    parsed_reader = fastavro.parse_schema(reader, named_schemas={})
    state = random.getstate()
    random.seed(seed)  # fastavro's generator draws from the module-level generator
    try:
        records = list(generate_many(parsed_writer, count))
    finally:
        random.setstate(state)
    for index, record in enumerate(records):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed_writer, record)
        buffer.seek(0)
        try:
            fastavro.schemaless_reader(buffer, parsed_writer, parsed_reader)
        except Exception as exc:  # any failure to read is the finding
            return [Problem(f"sample #{index}", f"fastavro cannot read it: {exc}"[:300])]
    return []


def backward_problems(released: Any, current: Any) -> list[Problem]:
    """Both checks; the static rules first (they say which field), samples as the backstop."""
    return resolution_problems(released, current) or sample_problems(released, current)


def pretty(schema: Any) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
