"""Errors raised while decoding or encoding event values.

Exception tree::

    CodecError                  anything that stops bytes becoming a record (or back)
    ├── MalformedMessageError   not a framing we know, or the body is truncated/garbage
    ├── UnknownSchemaError      well-framed, but the writer schema's fingerprint is unknown
    └── RecordValidationError   decoded, but the record breaks the pydantic model's rules

Every error names a stable ``code`` that the dead-letter headers carry.
"""

from __future__ import annotations


class CodecError(Exception):
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
