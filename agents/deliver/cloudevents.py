"""CloudEvents attributes for completion events, per the Kafka protocol binding in binary mode.

The value stays the Avro ``AssetCompleted`` (single-object encoding); the ``ce_*`` headers let
any CloudEvents-aware consumer route, deduplicate and trace completions without decoding Avro.
``ce_id`` is ``<request_id>/<attempt>``: the same completion always carries the same id, so a
consumer that sees a republished event (after a crash or a replay) can drop it.
"""

from __future__ import annotations

from typing import Final

from schemas.records import AssetCompleted

SPEC_VERSION: Final = "1.0"
EVENT_TYPE: Final = "io.assetline.asset.completed.v1"
#: Media type of the Kafka value: Avro binary in the single-object encoding.
CONTENT_TYPE: Final = "application/avro"


def event_source(topic_prefix: str) -> str:
    """A URI-reference naming this line; distinct per deployment prefix."""
    return f"/assetline/{topic_prefix}"


def data_schema(fingerprint: bytes) -> str:
    """A URI for the writer schema: the CRC-64-AVRO fingerprint the value itself carries."""
    return f"urn:assetline:schema:io.assetline.v1.AssetCompleted:crc64-{fingerprint.hex()}"


def completion_headers(
    done: AssetCompleted, *, source: str, dataschema: str
) -> list[tuple[str, bytes]]:
    """Binary-mode headers: required attributes, then ``time``, ``subject`` and ``dataschema``."""
    completed = done.completed_at.isoformat().replace("+00:00", "Z")
    attributes = [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", f"{done.request_id}/{done.attempt}"),
        ("ce_source", source),
        ("ce_type", EVENT_TYPE),
        ("ce_time", completed),
        ("ce_subject", done.request_id),
        ("ce_dataschema", dataschema),
        ("content-type", CONTENT_TYPE),
    ]
    return [(name, value.encode("utf-8")) for name, value in attributes]
