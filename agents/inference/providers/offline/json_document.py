"""A JSON document that satisfies a request's JSON Schema, filled deterministically from copy.

Kept apart from the copy templates: this is a small schema interpreter with hard limits, so a
tenant's schema cannot make the worker build an unbounded document.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from agents.inference.providers.base import ProviderError
from agents.inference.providers.offline.text import (
    CopyParts,
    compose_copy,
    trim_text,
)
from schemas.errors import AssetlineError
from streams.limits import ASSET_TOO_LARGE

_HEADLINE_KEYS: Final = frozenset({"title", "headline", "name", "subject", "heading"})
_CTA_KEYS: Final = frozenset({"cta", "call_to_action", "calltoaction", "button", "action"})
_LOCALE_KEYS: Final = frozenset({"locale", "language", "lang"})
_DEFAULT_ARRAY_LENGTH: Final = 2
_UNIQUE_ATTEMPTS: Final = 8
#: Below this depth optional properties and default-length arrays are filled in; deeper, only
#: what the schema requires, so recursive schemas ($ref to itself) still end.
_OPTIONAL_DEPTH: Final = 6
#: Hard limits: a tenant's schema must not make the worker build an unbounded document.
_MAX_DEPTH: Final = 64
_MAX_NODES: Final = 10_000
_MAX_STRING: Final = 100_000
_FORMAT_SAMPLES: Final[Mapping[str, str]] = {
    "email": "hello@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}

Schema = Mapping[str, Any]


class _SchemaTooLarge(AssetlineError):
    """The schema asks for more than the hard limits allow (or for an infinite document)."""

    code = "provider.bad_constraints"


class _DocumentTooLarge(AssetlineError):
    """The document would exceed the JSON asset cap (``max_bytes``)."""

    code = ASSET_TOO_LARGE


@dataclass
class _Context:
    """What schema-driven generation draws values from, and the node budget left."""

    variables: Mapping[str, str]
    copy: CopyParts
    root: Schema
    nodes_left: int = _MAX_NODES
    #: Bytes of the document still allowed (strings and scalars counted as they are built).
    bytes_left: float = math.inf


@dataclass(frozen=True)
class _Slot:
    """Where a value goes: the property name, and its index when it is an array item."""

    name: str
    item: int | None = None


def _mix(seed: int, salt: str) -> int:
    """A per-position seed (FNV-style), so siblings differ; ``hash()`` would vary per process."""
    value = seed & 0xFFFFFFFFFFFFFFFF
    for char in salt:
        value = (value * 1099511628211 ^ ord(char)) & 0xFFFFFFFFFFFFFFFF
    return value


def _resolve_ref(schema: Schema, ctx: _Context) -> Schema:
    """Follow a local ``#/...`` reference; remote ones are treated as an empty schema."""
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return schema
    node: Any = ctx.root if ref.startswith("#") else None
    for raw in ref[1:].split("/")[1:]:
        key = raw.replace("~1", "/").replace("~0", "~")
        node = node.get(key) if isinstance(node, Mapping) else None
    target: Schema = node if isinstance(node, Mapping) else {}
    return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}


def _merge_all_of(schema: Schema, ctx: _Context) -> Schema:
    """Shallow-merge ``allOf`` branches: enough for the usual "base + extra fields" pattern."""
    branches = schema.get("allOf")
    if not isinstance(branches, list):
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for branch in branches:
        if not isinstance(branch, Mapping):
            continue
        for key, value in _resolve_ref(branch, ctx).items():
            if key == "properties" and isinstance(value, Mapping):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _schema_type(schema: Schema) -> str:
    """The declared type (first non-null of a list), else one implied by the keywords."""
    declared = schema.get("type")
    if isinstance(declared, list):
        concrete = [kind for kind in declared if kind != "null"]
        declared = concrete[0] if concrete else "null"
    if isinstance(declared, str):
        return declared
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "minItems" in schema or "prefixItems" in schema:
        return "array"
    if "minimum" in schema or "maximum" in schema:
        return "number"
    return "string"


def _object_value(schema: Schema, ctx: _Context, slot: _Slot, seed: int, depth: int) -> Any:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    required = [key for key in schema.get("required", []) if isinstance(key, str)]
    keys = list(properties) if depth < _OPTIONAL_DEPTH else []
    keys += [key for key in required if key not in keys]
    extra = schema.get("additionalProperties", {})
    return {
        key: _instance(properties.get(key, extra), ctx, _Slot(key), _mix(seed, key), depth + 1)
        for key in keys
    }


def _array_value(schema: Schema, ctx: _Context, slot: _Slot, seed: int, depth: int) -> Any:
    minimum = int(schema.get("minItems", 0))
    wanted = max(minimum, _DEFAULT_ARRAY_LENGTH) if depth < _OPTIONAL_DEPTH else minimum
    count = min(wanted, int(schema.get("maxItems", wanted)))
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    count = max(count, min(len(prefix), minimum))
    unique = schema.get("uniqueItems") is True
    values: list[Any] = []
    seen: set[str] = set()
    for index in range(count):
        sub = prefix[index] if index < len(prefix) else schema.get("items", {})
        for attempt in range(_UNIQUE_ATTEMPTS if unique else 1):
            # A distinct item index makes strings pick a different piece of the copy.
            item = _Slot(slot.name, index + attempt * count)
            value = _instance(sub, ctx, item, _mix(seed, f"[{index}:{attempt}]"), depth + 1)
            key = json.dumps(value, sort_keys=True)
            if key not in seen:
                break
        seen.add(key)
        values.append(value)
    return values


def _text_for(slot: _Slot, ctx: _Context) -> str:
    """A variable of the same name wins; else the piece of the copy the name suggests."""
    value = ctx.variables.get(slot.name, "")
    key = slot.name.lower()
    if key in _LOCALE_KEYS:
        return value or ctx.variables.get("locale") or ctx.copy.language
    if slot.item is not None:
        pieces = (value, ctx.copy.body, ctx.copy.cta, ctx.copy.headline, ctx.copy.full)
        pool = list(dict.fromkeys(piece for piece in pieces if piece))
        lap, index = divmod(slot.item, len(pool))
        # Numbered once the pieces run out, so long uniqueItems arrays stay unique.
        return f"{lap + 1}. {pool[index]}" if lap else pool[index]
    if value:
        return value
    if key in _HEADLINE_KEYS:
        return ctx.copy.headline or ctx.copy.body
    if key in _CTA_KEYS:
        return ctx.copy.cta
    return ctx.copy.body


def _string_value(schema: Schema, ctx: _Context, slot: _Slot, seed: int, depth: int) -> Any:
    min_length = int(schema.get("minLength", 0))
    if min_length > _MAX_STRING:
        raise _SchemaTooLarge(f"minLength {min_length} exceeds {_MAX_STRING}")
    if min_length > ctx.bytes_left:  # refuse before building it
        raise _DocumentTooLarge("the document reached the size cap")
    fmt = schema.get("format")
    text = (_FORMAT_SAMPLES.get(fmt) if isinstance(fmt, str) else None) or _text_for(slot, ctx)
    if len(text) < min_length:
        filler = f" {ctx.copy.full}"
        text += filler * -(-(min_length - len(text)) // len(filler))
    max_length = schema.get("maxLength")
    if max_length is not None:
        limit = int(max_length)
        trimmed = trim_text(text, limit) if limit > 0 else ""
        # A word-boundary cut may undershoot minLength; a hard cut cannot.
        text = trimmed if len(trimmed) >= min_length else text[:limit]
    return text


def _bound(schema: Schema, key: str) -> float | None:
    """A numeric keyword; booleans (draft-4 ``exclusiveMinimum: true``) do not count."""
    value = schema.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _number_bounds(schema: Schema, step: float) -> tuple[float, float]:
    """Inclusive bounds, exclusive ones folded in by ``step`` (1 for integers)."""
    low, high = -math.inf, math.inf
    if (minimum := _bound(schema, "minimum")) is not None:
        low = minimum
    if (exclusive := _bound(schema, "exclusiveMinimum")) is not None:
        low = max(low, exclusive + step)
    if (maximum := _bound(schema, "maximum")) is not None:
        high = maximum
    if (exclusive := _bound(schema, "exclusiveMaximum")) is not None:
        high = min(high, exclusive - step)
    return low, high


def _integer_value(schema: Schema, ctx: _Context, slot: _Slot, seed: int, depth: int) -> Any:
    low, high = _number_bounds(schema, 1.0)
    if low > -math.inf:
        start = math.ceil(low)
    elif high < 0:
        start = math.floor(high) - 99
    else:
        start = 0
    stop = math.floor(high) if high < math.inf else start + 99
    multiple = schema.get("multipleOf")
    if isinstance(multiple, int) and multiple > 0:
        first = -(-start // multiple) * multiple
        choices = max(0, (stop - first) // multiple) + 1
        return first + (seed % choices) * multiple
    return start + seed % (stop - start + 1) if stop >= start else start


def _number_value(schema: Schema, ctx: _Context, slot: _Slot, seed: int, depth: int) -> Any:
    if isinstance(schema.get("multipleOf"), int):
        return _integer_value(schema, ctx, slot, seed, depth)
    low, high = _number_bounds(schema, 1e-6)
    if low == -math.inf and high == math.inf:
        low, high = 0.0, 100.0
    elif low == -math.inf:
        low = high - 100.0
    elif high == math.inf:
        high = low + 100.0
    exact = low + (high - low) * ((seed % 1000) / 1000.0)
    rounded = round(exact, 2)  # two decimals read like a price or a score
    return rounded if low <= rounded <= high else exact


def _boolean_value(schema: Schema, ctx: _Context, slot: _Slot, seed: int, depth: int) -> Any:
    return seed % 2 == 0


def _null_value(schema: Schema, ctx: _Context, slot: _Slot, seed: int, depth: int) -> Any:
    return None


_Builder = Callable[[Schema, _Context, _Slot, int, int], Any]
_BUILDERS: Final[Mapping[str, _Builder]] = {
    "object": _object_value,
    "array": _array_value,
    "string": _string_value,
    "integer": _integer_value,
    "number": _number_value,
    "boolean": _boolean_value,
    "null": _null_value,
}


def _instance(schema: Any, ctx: _Context, slot: _Slot, seed: int, depth: int) -> Any:
    """One value satisfying ``schema`` for the common keywords (``pattern``/``not`` ignored)."""
    ctx.nodes_left -= 1
    if ctx.nodes_left < 0 or depth > _MAX_DEPTH:
        raise _SchemaTooLarge(
            f"an instance needs more than {_MAX_NODES} values or depth {_MAX_DEPTH}"
        )
    if not isinstance(schema, Mapping):  # true, or a malformed subschema: anything goes
        schema = {}
    schema = _merge_all_of(_resolve_ref(schema, ctx), ctx)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[seed % len(enum)]
    for combinator in ("oneOf", "anyOf"):
        branches = schema.get(combinator)
        if isinstance(branches, list) and branches:
            base = {k: v for k, v in schema.items() if k != combinator}
            first = _resolve_ref(branches[0], ctx) if isinstance(branches[0], Mapping) else {}
            return _instance({**base, **first}, ctx, slot, seed, depth + 1)
    builder = _BUILDERS.get(_schema_type(schema), _string_value)
    value = builder(schema, ctx, slot, seed, depth)
    # Containers count their punctuation; their members counted themselves.
    ctx.bytes_left -= len(value) + 2 if isinstance(value, str) else 2
    if ctx.bytes_left < 0:
        raise _DocumentTooLarge("the document reached the size cap")
    return value


def _min_size(schema: Any, ctx: _Context, depth: int, visits: list[int]) -> int:
    """A lower bound of the bytes of any instance this generator builds for ``schema``.

    Multiplies instead of iterating (``minItems`` x the item's minimum), so estimating a
    900 MB document costs a handful of steps. Gives up (0) past the depth and visit limits:
    building then stops on its own limits.
    """
    visits[0] -= 1
    if visits[0] < 0 or depth > _MAX_DEPTH or not isinstance(schema, Mapping):
        return 0
    schema = _merge_all_of(_resolve_ref(schema, ctx), ctx)
    if "const" in schema or isinstance(schema.get("enum"), list):
        return 1
    for combinator in ("oneOf", "anyOf"):
        branches = schema.get(combinator)
        if isinstance(branches, list) and branches:
            base = {k: v for k, v in schema.items() if k != combinator}
            first = _resolve_ref(branches[0], ctx) if isinstance(branches[0], Mapping) else {}
            return _min_size({**base, **first}, ctx, depth + 1, visits)
    kind = _schema_type(schema)
    if kind == "object":
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        extra = schema.get("additionalProperties", {})
        required = {key for key in schema.get("required", []) if isinstance(key, str)}
        return 2 + sum(
            len(key) + 4 + _min_size(properties.get(key, extra), ctx, depth + 1, visits)
            for key in required
        )
    if kind == "array":
        count = _int(schema.get("minItems"))
        prefix = schema.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        head = prefix[:count]
        size = 2 + sum(_min_size(sub, ctx, depth + 1, visits) + 1 for sub in head)
        rest = count - len(head)
        if rest > 0:
            size += rest * (_min_size(schema.get("items", {}), ctx, depth + 1, visits) + 1)
        return size
    if kind == "string":
        return 2 + _int(schema.get("minLength"))
    return 1


def _int(value: Any) -> int:
    """A non-negative count keyword; anything else (a float, a string) reads as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def render_json(
    prompt: str,
    variables: Mapping[str, str],
    json_schema: str | None,
    seed: int,
    *,
    max_bytes: int | None = None,
) -> str:
    """A JSON document: a copy object by default, or an instance of ``json_schema`` when given.

    Best effort for schemas: the common keywords are honoured, the rest (``pattern``, ``not``,
    ``if``/``then``) is not, and the validate stage has the final word. Raises
    :class:`ProviderError` ``provider.bad_constraints`` for a schema that is not JSON, is
    malformed, or asks for a document beyond the hard size limits, and ``asset.too_large``
    when the document would exceed ``max_bytes``: refused from the schema's minimum size
    before building, or as soon as the document being built reaches the cap.
    """
    copy = compose_copy(prompt, variables, seed)
    if json_schema is None:
        document: Any = {
            "headline": copy.headline or copy.body,
            "body": copy.body,
            "cta": copy.cta,
            "locale": variables.get("locale", copy.language),
            "variables": dict(sorted(variables.items())),
        }
        return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    cap = math.inf if max_bytes is None else max_bytes
    try:
        schema = json.loads(json_schema)
        root = schema if isinstance(schema, Mapping) else {}
        ctx = _Context(variables, copy, root, bytes_left=cap)
        minimum = _min_size(schema, ctx, 0, [_MAX_NODES])
        if minimum > cap:
            raise ProviderError(
                ASSET_TOO_LARGE,
                f"json_schema asks for a document of at least {minimum} bytes; the cap is {cap}",
            )
        document = _instance(schema, ctx, _Slot(""), seed, 0)
    except _DocumentTooLarge:
        raise ProviderError(
            ASSET_TOO_LARGE, f"the document for json_schema exceeds the cap of {cap} bytes"
        ) from None
    except (ValueError, TypeError, _SchemaTooLarge) as exc:
        raise ProviderError(
            "provider.bad_constraints", f"cannot satisfy json_schema: {exc}"
        ) from None
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
