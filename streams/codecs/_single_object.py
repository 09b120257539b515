"""Avro single-object encoding, with writer -> reader schema resolution.

Framing (Avro specification, "Single-object encoding")::

    C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema | Avro binary body

How it differs from Confluent Schema Registry framing (``00`` + 4-byte big-endian registry id +
body): the schema is identified by a fingerprint of its Parsing Canonical Form, so no registry is
needed; a reader just has to know the writer schema. The first byte tells the two apart (``C3``
vs ``00``), which is the seam where Confluent framing will be added.
"""

from __future__ import annotations

import io
import struct
from typing import Any, Generic, TypeVar

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint, to_parsing_canonical_form
from pydantic import BaseModel, ValidationError

from streams.codecs._errors import (
    MalformedMessageError,
    RecordValidationError,
    UnknownSchemaError,
)

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8

M = TypeVar("M", bound=BaseModel)


def schema_fingerprint(schema: dict[str, Any]) -> bytes:
    """CRC-64-AVRO of the schema's Parsing Canonical Form, as the 8 bytes written on the wire."""
    canonical = to_parsing_canonical_form(schema)
    # fastavro returns the fingerprint as hex of its little-endian bytes, the wire order.
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


def fingerprint_as_long(fp: bytes) -> int:
    """The signed 64-bit value Java's ``SchemaNormalization.parsingFingerprint64`` returns."""
    value: int = struct.unpack("<q", fp)[0]
    return value


def _short(exc: BaseException, limit: int = 300) -> str:
    """fastavro puts whole schemas into some messages; headers and logs need the gist."""
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."


def _parse(schema: dict[str, Any]) -> dict[str, Any]:
    # A private name table per schema, so two versions of the same named records never clash.
    parsed = fastavro.parse_schema(schema, named_schemas={})
    assert isinstance(parsed, dict)
    return parsed


class SchemaStore:
    """Writer schemas this process can read, by fingerprint.

    The current schemas are registered at start; older versions (and other producers' schemas)
    can be registered too, and their records are resolved to the current reader schema.
    """

    def __init__(self) -> None:
        self._by_fingerprint: dict[bytes, dict[str, Any]] = {}

    def register(self, schema: dict[str, Any]) -> bytes:
        """Make ``schema`` known as a writer schema; return its fingerprint."""
        fp = schema_fingerprint(schema)
        if fp not in self._by_fingerprint:
            self._by_fingerprint[fp] = _parse(schema)
        return fp

    def writer(self, fp: bytes) -> dict[str, Any]:
        """The parsed writer schema for ``fp``."""
        try:
            return self._by_fingerprint[fp]
        except KeyError:
            raise UnknownSchemaError(
                f"no schema with fingerprint {fingerprint_as_long(fp)} ({fp.hex()}) is known"
            ) from None

    def __contains__(self, fp: object) -> bool:
        return fp in self._by_fingerprint

    def __len__(self) -> int:
        return len(self._by_fingerprint)


def split_frame(data: bytes) -> tuple[bytes, memoryview]:
    """Return (fingerprint, body) of a single-object encoded message."""
    if len(data) < HEADER_SIZE or data[:2] != MAGIC:
        head = bytes(data[:4]).hex() or "empty"
        raise MalformedMessageError(
            f"not Avro single-object encoding (expected C3 01 + 8-byte fingerprint, got {head})"
        )
    view = memoryview(data)
    return bytes(view[2:HEADER_SIZE]), view[HEADER_SIZE:]


class SingleObjectCodec(Generic[M]):
    """Encodes one record type to single-object Avro and decodes any known writer version."""

    def __init__(self, model: type[M], reader_schema: dict[str, Any], store: SchemaStore) -> None:
        self.model = model
        self.store = store
        self.fingerprint = store.register(reader_schema)
        self._reader = store.writer(self.fingerprint)
        self._header = MAGIC + self.fingerprint

    def encode(self, record: M) -> bytes:
        """Serialise ``record`` with the current (reader) schema as the writer schema."""
        return self.encode_dict(record.model_dump())

    def encode_dict(self, datum: dict[str, Any]) -> bytes:
        """Serialise plain data; fastavro raises on values of the wrong type while writing.

        It does not check that an ``int`` fits 32 bits: the models' ``AvroInt`` fields do.
        """
        buffer = io.BytesIO()
        buffer.write(self._header)
        try:
            fastavro.schemaless_writer(buffer, self._reader, datum)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise RecordValidationError(
                f"cannot encode {self.model.__name__}: {_short(exc)}"
            ) from exc
        return buffer.getvalue()

    def decode_dict(self, data: bytes) -> dict[str, Any]:
        """Decode to plain data in the reader schema's shape (no model validation)."""
        fp, body = split_frame(data)
        writer = self.store.writer(fp)
        stream = io.BytesIO(body)
        try:
            if fp == self.fingerprint:
                datum = fastavro.schemaless_reader(stream, writer, None)
            else:
                datum = fastavro.schemaless_reader(stream, writer, self._reader)
        except SchemaResolutionError as exc:
            raise UnknownSchemaError(
                f"writer schema {fp.hex()} cannot be resolved to {self.model.__name__}: "
                f"{_short(exc)}"
            ) from exc
        except (EOFError, StopIteration, struct.error, IndexError) as exc:
            raise MalformedMessageError(
                f"{self.model.__name__} body is truncated ({len(body)} bytes)"
            ) from exc
        except (ValueError, TypeError, KeyError, UnicodeDecodeError, OverflowError) as exc:
            raise MalformedMessageError(
                f"{self.model.__name__} body is garbage: {_short(exc)}"
            ) from exc
        if stream.tell() != len(body):
            raise MalformedMessageError(
                f"{self.model.__name__} body has {len(body) - stream.tell()} trailing bytes"
            )
        if not isinstance(datum, dict):
            raise MalformedMessageError(f"{self.model.__name__} body is not a record")
        return datum

    def decode(self, data: bytes) -> M:
        """Decode and validate against the model."""
        datum = self.decode_dict(data)
        try:
            return self.model.model_validate(datum)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "record"
            raise RecordValidationError(
                f"{self.model.__name__} is invalid at {where}: {first['msg']}"
            ) from exc
