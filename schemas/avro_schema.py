"""Derive Avro schemas from the pydantic records, so the two can never disagree.

Hand-written on purpose (about a hundred lines) rather than taken from dataclasses-avroschema or
pydantic-avro: the contract needs exact control over names, ``doc`` strings, nullable unions with
``null`` defaults, ``timestamp-millis`` and ``int`` vs ``long``, and those libraries each pick
different conventions for these.

Mapping: ``str`` -> string, ``int`` -> long (``Annotated[int, AvroInt]`` -> int), ``float`` ->
double, ``bool`` -> boolean, ``datetime`` -> long/timestamp-millis, ``StrEnum`` -> enum (with
the enum's ``default`` symbol when the class sets ``__avro_default__``), ``dict[str, X]`` -> map,
``list[X]`` -> array, ``X | None`` -> ["null", X] with default null, nested models -> named
records (defined at first use, referenced by full name after).
"""

from __future__ import annotations

import json
import types
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Final, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined, core_schema

from schemas.errors import AssetlineError

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler
    from pydantic.fields import FieldInfo

INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1


class _AvroIntMarker:
    """Marks an ``int`` that is an Avro 32-bit ``int`` rather than the default ``long``.

    Pydantic also enforces the 32-bit range, because fastavro writes a larger value into an
    ``int`` field without complaint and readers in other languages then reject the record.
    """

    def __repr__(self) -> str:
        return "AvroInt"

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        if source is int:
            return core_schema.int_schema(ge=INT32_MIN, le=INT32_MAX)
        return handler(source)


AvroInt: Final = _AvroIntMarker()

AvroSchema = dict[str, Any] | list[Any] | str


class SchemaGenerationError(AssetlineError, TypeError):
    """A model uses a Python type that has no Avro mapping here."""

    code = "schema.no_avro_mapping"


def avro_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Return the standalone Avro schema of ``model`` (nested records defined inline)."""
    result = _record(model, defined=set())
    assert isinstance(result, dict)
    return result


def avro_schema_json(model: type[BaseModel]) -> str:
    """The schema as it is committed to ``schemas/``: stable key order, two-space indent."""
    return json.dumps(avro_schema(model), indent=2, ensure_ascii=False) + "\n"


def _full_name(cls: type) -> str:
    namespace = getattr(cls, "avro_namespace", None)
    return f"{namespace}.{cls.__name__}" if namespace else cls.__name__


def _record(model: type[BaseModel], defined: set[str]) -> AvroSchema:
    name = _full_name(model)
    if name in defined:
        return name
    defined.add(name)
    fields = [_field(fname, info, defined) for fname, info in model.model_fields.items()]
    schema: dict[str, Any] = {"type": "record", "name": model.__name__}
    namespace = getattr(model, "avro_namespace", None)
    if namespace:
        schema["namespace"] = namespace
    if model.__doc__:
        schema["doc"] = " ".join(model.__doc__.split())
    schema["fields"] = fields
    return schema


def _field(name: str, info: FieldInfo, defined: set[str]) -> dict[str, Any]:
    annotation: Any = info.annotation
    if any(m is AvroInt for m in info.metadata):
        annotation = Annotated[annotation, AvroInt]
    field: dict[str, Any] = {"name": name, "type": _type(annotation, defined)}
    if info.description:
        field["doc"] = info.description
    default = _default(info)
    if default is not PydanticUndefined:
        field["default"] = default
    return field


def _default(info: FieldInfo) -> Any:
    """Avro defaults only for values that are plain data; factories of records get none."""
    if info.default is not PydanticUndefined:
        value = info.default
    elif info.default_factory is not None and info.default_factory in (dict, list):
        value = info.default_factory()
    else:
        return PydanticUndefined
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, bool | int | float | str | dict | list):
        return value
    return PydanticUndefined


def _type(annotation: Any, defined: set[str]) -> AvroSchema:
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extra = get_args(annotation)
        if any(m is AvroInt for m in extra):
            return _int_or_union(base, defined)
        return _type(base, defined)
    if origin in (Union, types.UnionType):
        members = get_args(annotation)
        non_null = [m for m in members if m is not type(None)]
        if len(non_null) == 1 and len(members) == 2:
            return ["null", _type(non_null[0], defined)]
        raise SchemaGenerationError(f"only 'X | None' unions are supported, got {annotation!r}")
    if origin is dict:
        key, value = get_args(annotation)
        if key is not str:
            raise SchemaGenerationError("Avro maps need string keys")
        return {"type": "map", "values": _type(value, defined)}
    if origin is list:
        (item,) = get_args(annotation)
        return {"type": "array", "items": _type(item, defined)}
    if isinstance(annotation, type):
        return _plain_type(annotation, defined)
    raise SchemaGenerationError(f"no Avro mapping for {annotation!r}")


def _int_or_union(base: Any, defined: set[str]) -> AvroSchema:
    if base is int:
        return "int"
    if get_origin(base) in (Union, types.UnionType):
        inner = [m for m in get_args(base) if m is not type(None)]
        if inner == [int]:
            return ["null", "int"]
    raise SchemaGenerationError(f"AvroInt applies to int fields, got {base!r}")


def _plain_type(cls: type, defined: set[str]) -> AvroSchema:
    if issubclass(cls, BaseModel):
        return _record(cls, defined)
    if issubclass(cls, Enum):
        name = _full_name(cls)
        if name in defined:
            return name
        defined.add(name)
        schema: dict[str, Any] = {"type": "enum", "name": cls.__name__}
        namespace = getattr(cls, "avro_namespace", None)
        if namespace:
            schema["namespace"] = namespace
        if cls.__doc__:
            schema["doc"] = " ".join(cls.__doc__.split())
        schema["symbols"] = [member.value for member in cls]
        default = getattr(cls, "__avro_default__", None)
        if default is not None:
            if default not in schema["symbols"]:
                raise SchemaGenerationError(f"{name}: __avro_default__ {default!r} is no symbol")
            schema["default"] = default
        return schema
    if cls is bool:  # before int: bool is a subclass of int
        return "boolean"
    if cls is int:
        return "long"
    if cls is float:
        return "double"
    if cls is str:
        return "string"
    if cls is bytes:
        return "bytes"
    if cls is datetime:
        return {"type": "long", "logicalType": "timestamp-millis"}
    raise SchemaGenerationError(f"no Avro mapping for {cls!r}")
