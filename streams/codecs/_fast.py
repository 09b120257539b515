"""Optional cavro fast path for bodies written with exactly the reader schema.

fastavro's ``schemaless_reader`` costs ~8 us per GenerationRequest, most of the decode budget;
cavro (Cython) reads the same body in ~3 us. cavro is used only where it is proven to give the
same answer as fastavro:

* only when writer schema == reader schema (schema resolution stays with fastavro);
* only for schemas built from the types the contracts use (``_SAFE_PRIMITIVES``, records, enums,
  arrays, maps, unions, ``timestamp-millis``), which the tests compare against fastavro;
* ``int`` is read as ``long`` (same zigzag varint on the wire): cavro wraps out-of-range ints to
  32 bits, fastavro returns them whole and the models' ``AvroInt`` rejects them;
* it never *rejects* anything itself: any cavro error or leftover byte returns ``None`` and the
  caller re-reads with fastavro, so malformed messages fail exactly as before (same exception,
  same message), and inputs only fastavro accepts (e.g. negative block counts) still decode.

cavro's ``MemoryReader`` exposes no position, so "consumed the whole body" is checked exactly by
reading one more byte (a ``fixed`` of size 1), which must hit end-of-input.
"""

from __future__ import annotations

from typing import Any

from schemas.errors import AssetlineError

try:
    import cavro  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # optional accelerator: without it every body goes through fastavro
    cavro = None

_SAFE_PRIMITIVES = frozenset({"boolean", "int", "long", "double", "string"})
_SAFE_LOGICAL = {"timestamp-millis": "long"}


class _Unsafe(AssetlineError):
    """The schema uses a type the fast path is not proven for."""

    code = "codec.fast_path_unproven"


def _fullname(schema: dict[str, Any], namespace: str | None) -> tuple[str, str | None]:
    name = str(schema["name"])
    if "." in name:
        return name, name.rpartition(".")[0]
    space = schema.get("namespace", namespace) or None
    return (f"{space}.{name}" if space else name), space


def _widen(schema: Any, namespace: str | None, names: set[str], *, in_union: bool = False) -> Any:
    """A copy of ``schema`` with ``int`` read as ``long``; raises :class:`_Unsafe` if unproven.

    ``null`` is allowed only as a union branch: every other vetted type takes at least one byte,
    so a bogus (huge or negative) array/map count always runs out of input instead of looping.
    """
    if isinstance(schema, list):
        return [_widen(branch, namespace, names, in_union=True) for branch in schema]
    if isinstance(schema, str):
        if schema == "null" and in_union:
            return schema
        if schema in _SAFE_PRIMITIVES:
            return "long" if schema == "int" else schema
        if schema in names or (namespace and f"{namespace}.{schema}" in names):
            return schema
        raise _Unsafe(schema)
    if not isinstance(schema, dict):
        raise _Unsafe(repr(schema))
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical is not None:
        if _SAFE_LOGICAL.get(logical) != kind:
            raise _Unsafe(f"{kind}/{logical}")
        return dict(schema)
    if kind in ("record", "enum"):
        full, space = _fullname(schema, namespace)
        names.update((full, str(schema["name"])))
        if kind == "enum":
            return dict(schema)
        if not schema.get("fields"):
            raise _Unsafe(f"empty record {full}")
        fields = [{**f, "type": _widen(f["type"], space, names)} for f in schema["fields"]]
        return {**schema, "fields": fields}
    if kind == "array":
        return {**schema, "items": _widen(schema["items"], namespace, names)}
    if kind == "map":
        return {**schema, "values": _widen(schema["values"], namespace, names)}
    return _widen(kind, namespace, names, in_union=in_union)


class FastReader:
    """Reads bodies written with one schema via cavro; ``None`` means "ask fastavro"."""

    def __init__(self, schema: Any) -> None:
        options = cavro.DEFAULT_OPTIONS.replace(
            record_decodes_to_dict=True, return_uuid_object=False
        )
        self._schema = cavro.Schema(_widen(schema, None, set()), options=options)
        self._probe = cavro.Schema({"type": "fixed", "name": "EndProbe", "size": 1})
        self._reader = cavro.MemoryReader

    def read(self, body: memoryview | bytes) -> dict[str, Any] | None:
        """The record, or ``None`` if cavro fails or leaves bytes over (fastavro then decides)."""
        reader = self._reader(body)
        try:
            datum = self._schema.binary_read(reader)
        except Exception:  # any failure: fastavro re-reads and raises its precise error
            return None
        try:
            self._probe.binary_read(reader)
        except EOFError:  # nothing left: the record used exactly the whole body
            return datum if isinstance(datum, dict) else None
        return None  # trailing bytes


def fast_reader(schema: dict[str, Any]) -> FastReader | None:
    """A :class:`FastReader` for ``schema``, or ``None`` (no cavro, or a type not proven)."""
    if cavro is None:
        return None
    try:
        return FastReader(schema)
    except Exception:  # _Unsafe, or a schema cavro refuses: fastavro reads it
        return None
