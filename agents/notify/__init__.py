"""Completion webhooks: Standard Webhooks signatures, an SSRF guard and a retry schedule.

A receiver verifies each call with any Standard Webhooks library; a redelivery of the same
completion keeps its ``webhook-id`` so receivers can deduplicate. Connections go only to the
addresses the guard approved (no DNS rebinding), and a 410 Gone disables the endpoint for
every worker through a compacted topic.
"""

from agents.egress.pinning import PinnedTransport, UnpinnedRequest, WebhookClient
from agents.egress.ssrf import (
    Destination,
    UnsafeDestination,
    check_address,
    check_destination,
)
from agents.notify.disabled import DisabledEndpoints, DisabledEntry, url_sha256
from agents.notify.schedule import RetrySchedule, parse_retry_after
from agents.notify.sender import (
    AttemptResult,
    WebhookOutcome,
    deliver,
    send_once,
)
from agents.notify.signing import InvalidSecret, signed_headers
from schemas.webhook_event import event_payload, event_type, webhook_id

__all__ = [
    "AttemptResult",
    "Destination",
    "DisabledEndpoints",
    "DisabledEntry",
    "InvalidSecret",
    "PinnedTransport",
    "RetrySchedule",
    "UnpinnedRequest",
    "UnsafeDestination",
    "WebhookClient",
    "WebhookOutcome",
    "check_address",
    "check_destination",
    "deliver",
    "event_payload",
    "event_type",
    "parse_retry_after",
    "send_once",
    "signed_headers",
    "url_sha256",
    "webhook_id",
]
