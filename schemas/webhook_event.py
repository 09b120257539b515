"""What a completion webhook says: a small JSON event that links the asset, never inlines it.

A contract with every webhook receiver (like the ``.avsc`` files are with consumers): the deliver
stage derives each job's ``webhook-id`` from it and the notify stage sends its body.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC
from typing import Any

from schemas.records import AssetCompleted, CompletionStatus

#: Receivers get the first few reasons only: enough to act on, small enough to stay a ping.
MAX_REASONS = 5
MAX_REASON_CHARS = 500

_TYPES = {
    CompletionStatus.DELIVERED: "asset.completed",
    CompletionStatus.FALLBACK: "asset.completed",  # delivered; data.status says it is a stand-in
    CompletionStatus.FAILED: "asset.failed",
    CompletionStatus.REJECTED: "asset.rejected",
}


def webhook_id(request_id: str, attempt: int) -> str:
    """Derived, not random, so a redelivery of the same completion keeps its id (receiver dedup)."""
    digest = hashlib.sha256(f"{request_id}\x00{attempt}".encode()).digest()[:24]
    return "msg_" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def event_type(status: CompletionStatus) -> str:
    """The Standard Webhooks ``type`` receivers route on."""
    return _TYPES[status]


def event_payload(done: AssetCompleted) -> bytes:
    """Compact UTF-8 JSON; ``timestamp`` is the completion time, so redeliveries are identical."""
    data: dict[str, Any] = {
        "request_id": done.request_id,
        "idempotency_key": done.idempotency_key,
        "tenant": done.tenant,
        "campaign_id": done.campaign_id,
        "status": done.status.value,
        "attempt": done.attempt,
        "location": done.location,
        "sha256": done.sha256,
        "media_type": done.media_type,
        "reasons": [reason[:MAX_REASON_CHARS] for reason in done.reasons[:MAX_REASONS]],
    }
    event = {
        "type": event_type(done.status),
        "timestamp": done.completed_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
