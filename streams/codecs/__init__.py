"""Codecs for event values: Avro single-object encoding and Confluent Schema Registry framing.

:class:`Codecs` bundles one codec per contract, sharing one :class:`SchemaStore`. Every codec
reads both framings; which one it writes is configured per topic (``wire_format_by_topic``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import schemas
from schemas.records import (
    Alert,
    AssetCompleted,
    GenerationRequest,
    RawAsset,
    ReviewDecision,
    ReviewItem,
    ValidatedAsset,
    WebhookJob,
)
from streams.codecs._codec import AvroCodec, SingleObjectCodec, WireFormat
from streams.codecs._confluent import (
    VALUE_SCHEMA_ID_HEADER,
    confluent_prefix,
    split_confluent,
)
from streams.codecs._errors import (
    CodecError,
    MalformedMessageError,
    RecordValidationError,
    RegistryError,
    UnknownSchemaError,
    UnknownSchemaIdError,
    UnsupportedFramingError,
)
from streams.codecs._single_object import (
    HEADER_SIZE,
    MAGIC,
    SchemaStore,
    fingerprint_as_long,
    schema_fingerprint,
    split_frame,
)

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "TOPIC_CONTRACTS",
    "VALUE_SCHEMA_ID_HEADER",
    "AvroCodec",
    "CodecError",
    "Codecs",
    "MalformedMessageError",
    "RecordValidationError",
    "RegistryError",
    "SchemaResolver",
    "SchemaStore",
    "SingleObjectCodec",
    "UnknownSchemaError",
    "UnknownSchemaIdError",
    "UnsupportedFramingError",
    "WireFormat",
    "confluent_prefix",
    "fingerprint_as_long",
    "schema_fingerprint",
    "split_confluent",
    "split_frame",
]

#: Line topic (short name, as in ``TopicNames``) -> the :class:`Codecs` field writing it.
TOPIC_CONTRACTS: dict[str, str] = {
    "requests": "request",
    "raw": "raw",
    "approved": "validated",
    "rejected": "validated",
    "review": "validated",
    "completed": "completed",
    "alerts": "alert",
    "review_decisions": "review_decision",
    "review_items": "review_item",
    "webhooks": "webhook_job",
}


class SchemaResolver(Protocol):
    """Fetches a Confluent registry id's writer schema into the store (:mod:`streams.registry`)."""

    async def ensure_known(self, schema_id: int) -> None: ...


def contract_formats(by_topic: Mapping[str, str]) -> dict[str, WireFormat]:
    """Per-topic framing -> per-codec framing; topics sharing a codec must agree."""
    unknown = sorted(set(by_topic) - set(TOPIC_CONTRACTS))
    if unknown:
        raise ValueError(
            f"wire_format_by_topic names unknown topic(s) {unknown}; "
            f"choose from {sorted(TOPIC_CONTRACTS)}"
        )
    formats: dict[str, WireFormat] = {}
    for topic, contract in TOPIC_CONTRACTS.items():
        wanted = WireFormat(by_topic.get(topic, WireFormat.SINGLE_OBJECT))
        if formats.setdefault(contract, wanted) is not wanted:
            sharing = sorted(t for t, c in TOPIC_CONTRACTS.items() if c == contract)
            raise ValueError(
                f"topics {sharing} carry the same records and must use the same wire format"
            )
    return formats


@dataclass(frozen=True)
class Codecs:
    """One codec per contract, all reading the committed ``schemas/*.avsc`` files."""

    store: SchemaStore
    request: AvroCodec[GenerationRequest]
    raw: AvroCodec[RawAsset]
    validated: AvroCodec[ValidatedAsset]
    completed: AvroCodec[AssetCompleted]
    alert: AvroCodec[Alert]
    review_decision: AvroCodec[ReviewDecision]
    review_item: AvroCodec[ReviewItem]
    webhook_job: AvroCodec[WebhookJob]
    #: Resolves unknown Confluent ids; ``None`` = no registry, such messages are dead-lettered.
    resolver: SchemaResolver | None = None

    @classmethod
    def load(
        cls,
        store: SchemaStore | None = None,
        *,
        wire_formats: Mapping[str, str] | None = None,
        resolver: SchemaResolver | None = None,
    ) -> Codecs:
        """``wire_formats`` is by topic short name (``{"completed": "confluent"}``)."""
        store = store if store is not None else SchemaStore()
        formats = contract_formats(wire_formats or {})

        def codec(field: str, model: type[Any]) -> AvroCodec[Any]:
            return AvroCodec(model, schemas.load(model.__name__), store, formats[field])

        return cls(
            store=store,
            request=codec("request", GenerationRequest),
            raw=codec("raw", RawAsset),
            validated=codec("validated", ValidatedAsset),
            completed=codec("completed", AssetCompleted),
            alert=codec("alert", Alert),
            review_decision=codec("review_decision", ReviewDecision),
            review_item=codec("review_item", ReviewItem),
            webhook_job=codec("webhook_job", WebhookJob),
            resolver=resolver,
        )

    def by_field(self, field: str) -> AvroCodec[Any]:
        codec: AvroCodec[Any] = getattr(self, field)
        return codec
