"""Completion webhooks: Standard Webhooks signatures, an SSRF guard and a retry schedule.

A receiver verifies each call with any Standard Webhooks library; a redelivery of the same
completion keeps its ``webhook-id`` so receivers can deduplicate.
"""

from agents.deliver.webhooks.payload import event_payload, event_type, webhook_id
from agents.deliver.webhooks.schedule import RetrySchedule, parse_retry_after
from agents.deliver.webhooks.sender import (
    AttemptResult,
    DisabledEndpoints,
    WebhookOutcome,
    deliver,
    send_once,
)
from agents.deliver.webhooks.signing import InvalidSecret, signed_headers
from agents.deliver.webhooks.ssrf import UnsafeDestination, check_address, check_destination

__all__ = [
    "AttemptResult",
    "DisabledEndpoints",
    "InvalidSecret",
    "RetrySchedule",
    "UnsafeDestination",
    "WebhookOutcome",
    "check_address",
    "check_destination",
    "deliver",
    "event_payload",
    "event_type",
    "parse_retry_after",
    "send_once",
    "signed_headers",
    "webhook_id",
]
