"""Errors raised while decoding or encoding event values.

Exception tree::

    CodecError                  anything that stops bytes becoming a record (or back)
    ├── MalformedMessageError   not a framing we know, or the body is truncated/garbage
    │   └── UnsupportedFramingError  a Confluent framing we recognise but cannot read (GUIDs)
    ├── UnknownSchemaError      well-framed, but the writer schema's fingerprint is unknown
    │   └── UnknownSchemaIdError     a Confluent registry id not fetched (or not in the registry)
    ├── RecordValidationError   decoded, but the record breaks the pydantic model's rules
    └── RegistryError           the schema registry is unreachable or answered an error

Every error names a stable ``code`` that the dead-letter headers carry.
"""

from __future__ import annotations

from schemas.errors import AssetlineError


class CodecError(AssetlineError):
    """Root of the codec errors."""

    code = "codec.error"


class MalformedMessageError(CodecError):
    """The bytes are not a well-formed framed Avro message."""

    code = "codec.malformed"


class UnknownSchemaError(CodecError):
    """The writer schema's fingerprint (or id) is not in the schema store."""

    code = "codec.unknown_schema"


class RecordValidationError(CodecError):
    """Avro decoded the record but it breaks the contract's rules."""

    code = "codec.invalid_record"


class UnknownSchemaIdError(UnknownSchemaError):
    """A Confluent-framed message names a registry id this process has not fetched yet.

    Decoding stays synchronous: the stage catches this, fetches the id from the registry
    (async) and decodes once more. Without a registry, or if the registry does not know the id,
    the message is dead-lettered with this code.
    """

    code = "codec.unknown_schema_id"

    def __init__(self, message: str, schema_id: int) -> None:
        super().__init__(message)
        self.schema_id = schema_id


class UnsupportedFramingError(MalformedMessageError):
    """A framing we recognise but cannot read: Confluent's schema GUID (magic byte 1).

    Newer Confluent serializers can name the writer schema by a 16-byte GUID, in the payload or
    in the ``__value_schema_id`` header; resolving GUIDs needs a registry API (``/schemas/guids``)
    that not every registry has, so such producers must use the classic id framing.
    """

    code = "codec.unsupported_framing"


class RegistryError(CodecError):
    """The schema registry could not be reached or answered with an error."""

    code = "registry.unavailable"
