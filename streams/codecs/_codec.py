"""One record type's codec: writes one framing, reads both, resolves writer -> reader schema.

Which framing a message uses is told by its first byte (``C3`` single-object, ``00`` Confluent),
so every topic accepts both, whatever its producers were configured with. Decoding is
synchronous and never does I/O: a Confluent id not yet in the :class:`SchemaStore` raises
:class:`UnknownSchemaIdError`, which the stage resolves through the registry and retries.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Generic, TypeVar

import fastavro
from fastavro.read import SchemaResolutionError
from pydantic import BaseModel, ValidationError

from streams.codecs._confluent import (
    MAGIC_GUID,
    MAGIC_ID,
    confluent_prefix,
    guid_error,
    schema_id_from_headers,
    split_confluent,
)
from streams.codecs._errors import (
    MalformedMessageError,
    RecordValidationError,
    RegistryError,
    UnknownSchemaError,
)
from streams.codecs._fast import fast_reader
from streams.codecs._single_object import MAGIC, SchemaStore, _short, split_frame

M = TypeVar("M", bound=BaseModel)

_SINGLE_OBJECT_FIRST = MAGIC[0]


class WireFormat(StrEnum):
    """The framing a codec writes (it always reads both)."""

    SINGLE_OBJECT = "single-object"
    CONFLUENT = "confluent"


class AvroCodec(Generic[M]):
    """Encodes one record type and decodes any known writer version, in either framing."""

    def __init__(
        self,
        model: type[M],
        reader_schema: dict[str, Any],
        store: SchemaStore,
        wire_format: WireFormat = WireFormat.SINGLE_OBJECT,
    ) -> None:
        self.model = model
        self.store = store
        self.wire_format = WireFormat(wire_format)
        self.reader_schema = reader_schema
        self.fingerprint = store.register(reader_schema)
        self.registry_id: int | None = None
        self._reader = store.writer(self.fingerprint)
        #: cavro reader for bodies written with the reader schema itself (see ``_fast``).
        self._fast = fast_reader(reader_schema)
        self._header: bytes | None = (
            MAGIC + self.fingerprint if self.wire_format is WireFormat.SINGLE_OBJECT else None
        )

    def bind_registry_id(self, schema_id: int) -> None:
        """Record the registry id of the reader schema; Confluent writers need it to encode."""
        self.store.register_id(schema_id, self.reader_schema)
        self.registry_id = schema_id
        if self.wire_format is WireFormat.CONFLUENT:
            self._header = confluent_prefix(schema_id)

    def encode(self, record: M) -> bytes:
        """Serialise ``record`` with the current (reader) schema as the writer schema."""
        return self.encode_dict(record.model_dump())

    def encode_dict(self, datum: dict[str, Any]) -> bytes:
        """Serialise plain data; fastavro raises on values of the wrong type while writing.

        It does not check that an ``int`` fits 32 bits: the models' ``AvroInt`` fields do.
        """
        if self._header is None:
            raise RegistryError(
                f"{self.model.__name__} is configured for Confluent framing but its schema "
                "has no registry id yet (is schema_registry_url set and reachable?)"
            )
        buffer = io.BytesIO()
        buffer.write(self._header)
        try:
            fastavro.schemaless_writer(buffer, self._reader, datum)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise RecordValidationError(
                f"cannot encode {self.model.__name__}: {_short(exc)}"
            ) from exc
        return buffer.getvalue()

    def _frame(
        self, data: bytes, headers: Iterable[tuple[str, bytes]] | None
    ) -> tuple[bytes, memoryview]:
        """(writer fingerprint, Avro body), whichever framing ``data`` uses."""
        if headers:
            header_id = schema_id_from_headers(headers)
            if header_id is not None:  # header-mode Confluent serializer: the payload is all body
                return self.store.fingerprint_for_id(header_id), memoryview(data)
        first = data[0] if data else -1
        if first == _SINGLE_OBJECT_FIRST:
            return split_frame(data)
        if first == MAGIC_ID:
            schema_id, body = split_confluent(data)
            return self.store.fingerprint_for_id(schema_id), body
        if first == MAGIC_GUID:
            raise guid_error("payload")
        return split_frame(data)  # raises, naming both framings

    def decode_dict(
        self, data: bytes, headers: Iterable[tuple[str, bytes]] | None = None
    ) -> dict[str, Any]:
        """Decode to plain data in the reader schema's shape (no model validation).

        Bodies written with the reader schema go through the cavro fast path when it is
        available; anything it does not read cleanly (including every malformed body) is
        re-read by fastavro, which alone decides the error.
        """
        fp, body = self._frame(data, headers)
        if fp == self.fingerprint and self._fast is not None:
            datum = self._fast.read(body)
            if datum is not None:
                return datum
        return self._read_fastavro(fp, body)

    def _read_fastavro(self, fp: bytes, body: memoryview) -> dict[str, Any]:
        """The reference decoder: resolves writer -> reader and classifies every failure."""
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

    def decode(self, data: bytes, headers: Iterable[tuple[str, bytes]] | None = None) -> M:
        """Decode and validate against the model.

        ``headers`` matter only for Confluent's header mode (``__value_schema_id``).
        """
        datum = self.decode_dict(data, headers)
        try:
            return self.model.model_validate(datum)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "record"
            raise RecordValidationError(
                f"{self.model.__name__} is invalid at {where}: {first['msg']}"
            ) from exc


#: The name the codec had when it wrote only single-object encoding.
SingleObjectCodec = AvroCodec
