"""Avro single-object encoding framing, fingerprints, and the store of known writer schemas.

Framing (Avro specification, "Single-object encoding")::

    C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema | Avro binary body

How it differs from Confluent Schema Registry framing (``00`` + 4-byte big-endian registry id +
body, see ``_confluent``): the schema is identified by a fingerprint of its Parsing Canonical
Form, so no registry is needed; a reader just has to know the writer schema. The first byte
tells the two apart (``C3`` vs ``00``); the codec (``_codec``) reads both.
"""

from __future__ import annotations

import struct
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from streams.codecs._errors import (
    MalformedMessageError,
    UnknownSchemaError,
    UnknownSchemaIdError,
)

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8


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
        self._by_registry_id: dict[int, bytes] = {}

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

    def register_id(self, schema_id: int, schema: dict[str, Any]) -> bytes:
        """Make ``schema`` known under a Confluent registry id too; return its fingerprint.

        Ids map to fingerprints, so a schema known both ways is parsed once, and records
        written under an id decode exactly like single-object ones.
        """
        fp = self.register(schema)
        self._by_registry_id[schema_id] = fp
        return fp

    def fingerprint_for_id(self, schema_id: int) -> bytes:
        """The fingerprint of registry id ``schema_id``, if it has been fetched or registered."""
        try:
            return self._by_registry_id[schema_id]
        except KeyError:
            raise UnknownSchemaIdError(
                f"schema registry id {schema_id} is not known to this process", schema_id
            ) from None

    def knows_id(self, schema_id: int) -> bool:
        return schema_id in self._by_registry_id

    def __contains__(self, fp: object) -> bool:
        return fp in self._by_fingerprint

    def __len__(self) -> int:
        return len(self._by_fingerprint)


def split_frame(data: bytes) -> tuple[bytes, memoryview]:
    """Return (fingerprint, body) of a single-object encoded message."""
    if len(data) < HEADER_SIZE or data[:2] != MAGIC:
        head = bytes(data[:4]).hex() or "empty"
        raise MalformedMessageError(
            f"not Avro single-object encoding (expected C3 01 + 8-byte fingerprint, got {head}) "
            "nor Confluent framing (00 + 4-byte schema id)"
        )
    view = memoryview(data)
    return bytes(view[2:HEADER_SIZE]), view[HEADER_SIZE:]
