"""Confluent Schema Registry wire format: ``00`` + 4-byte big-endian registry id + Avro body.

Only the framing lives here; ids are mapped to writer schemas by the :class:`SchemaStore`,
which the registry client fills. Newer Confluent serializers can also name the schema by a
16-byte GUID (magic byte ``01``), in the payload or in a ``__value_schema_id`` header; those
are recognised so they fail with a precise error instead of "garbage".
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from streams.codecs._errors import MalformedMessageError, UnsupportedFramingError

MAGIC_ID = 0x00
MAGIC_GUID = 0x01
HEADER_SIZE = 5
VALUE_SCHEMA_ID_HEADER = "__value_schema_id"

_ID = struct.Struct(">I")


def confluent_prefix(schema_id: int) -> bytes:
    """The 5 bytes written before the Avro body."""
    return bytes((MAGIC_ID,)) + _ID.pack(schema_id)


def split_confluent(data: bytes) -> tuple[int, memoryview]:
    """Return (registry id, body) of a message whose first byte is ``00``."""
    if len(data) < HEADER_SIZE:
        raise MalformedMessageError(
            f"Confluent framing needs 00 + 4-byte schema id, got {len(data)} bytes"
        )
    view = memoryview(data)
    schema_id: int = _ID.unpack_from(view, 1)[0]
    return schema_id, view[HEADER_SIZE:]


def guid_error(where: str) -> UnsupportedFramingError:
    return UnsupportedFramingError(
        f"Confluent schema GUID framing (magic byte 1) in the {where} is not supported; "
        "configure the producer's serializer to write the schema id prefix (magic byte 0)"
    )


def schema_id_from_headers(headers: Iterable[tuple[str, bytes]] | None) -> int | None:
    """The registry id a header-mode Confluent serializer put in ``__value_schema_id``.

    ``None`` when there is no such header (the id is then in the payload).
    """
    if not headers:
        return None
    for key, value in headers:
        if key != VALUE_SCHEMA_ID_HEADER:
            continue
        raw = bytes(value or b"")
        if raw[:1] == bytes((MAGIC_GUID,)):
            raise guid_error(f"{VALUE_SCHEMA_ID_HEADER} header")
        if len(raw) == HEADER_SIZE and raw[0] == MAGIC_ID:
            schema_id: int = _ID.unpack_from(raw, 1)[0]
            return schema_id
        raise MalformedMessageError(
            f"{VALUE_SCHEMA_ID_HEADER} header is not 00 + 4-byte id or 01 + GUID "
            f"(got {raw[:8].hex() or 'empty'})"
        )
    return None
