"""Codecs for event values: Avro single-object encoding now, Confluent framing later.

:class:`Codecs` bundles one codec per contract, sharing one :class:`SchemaStore`.
"""

from __future__ import annotations

from dataclasses import dataclass

import schemas
from streams.codecs._errors import (
    CodecError,
    MalformedMessageError,
    RecordValidationError,
    UnknownSchemaError,
)
from streams.codecs._single_object import (
    HEADER_SIZE,
    MAGIC,
    SchemaStore,
    SingleObjectCodec,
    fingerprint_as_long,
    schema_fingerprint,
    split_frame,
)
from streams.records import (
    Alert,
    AssetCompleted,
    GenerationRequest,
    RawAsset,
    ReviewDecision,
    ReviewItem,
    ValidatedAsset,
    WebhookJob,
)

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "CodecError",
    "Codecs",
    "MalformedMessageError",
    "RecordValidationError",
    "SchemaStore",
    "SingleObjectCodec",
    "UnknownSchemaError",
    "fingerprint_as_long",
    "schema_fingerprint",
    "split_frame",
]


@dataclass(frozen=True)
class Codecs:
    """One codec per contract, all reading the committed ``schemas/*.avsc`` files."""

    store: SchemaStore
    request: SingleObjectCodec[GenerationRequest]
    raw: SingleObjectCodec[RawAsset]
    validated: SingleObjectCodec[ValidatedAsset]
    completed: SingleObjectCodec[AssetCompleted]
    alert: SingleObjectCodec[Alert]
    review_decision: SingleObjectCodec[ReviewDecision]
    review_item: SingleObjectCodec[ReviewItem]
    webhook_job: SingleObjectCodec[WebhookJob]

    @classmethod
    def load(cls, store: SchemaStore | None = None) -> Codecs:
        store = store if store is not None else SchemaStore()
        return cls(
            store=store,
            request=SingleObjectCodec(GenerationRequest, schemas.load("GenerationRequest"), store),
            raw=SingleObjectCodec(RawAsset, schemas.load("RawAsset"), store),
            validated=SingleObjectCodec(ValidatedAsset, schemas.load("ValidatedAsset"), store),
            completed=SingleObjectCodec(AssetCompleted, schemas.load("AssetCompleted"), store),
            alert=SingleObjectCodec(Alert, schemas.load("Alert"), store),
            review_decision=SingleObjectCodec(
                ReviewDecision, schemas.load("ReviewDecision"), store
            ),
            review_item=SingleObjectCodec(ReviewItem, schemas.load("ReviewItem"), store),
            webhook_job=SingleObjectCodec(WebhookJob, schemas.load("WebhookJob"), store),
        )
