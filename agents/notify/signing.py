"""Standard Webhooks signatures (``webhook-id``/``-timestamp``/``-signature``) for one call.

Secrets look like ``whsec_<base64>``; they are never logged nor put in error messages.
"""

from __future__ import annotations

import binascii
import math
from datetime import UTC, datetime

from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from schemas.errors import AssetlineError


class InvalidSecret(AssetlineError, ValueError):
    """The secret is not ``whsec_`` + base64; the message never contains the secret."""

    code = "webhook.invalid_secret"


def signed_headers(secret: str, msg_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """Headers for one attempt: sign each attempt with a fresh timestamp, the same ``msg_id``."""
    if timestamp.tzinfo is None:
        # the library would read a naive time as UTC, silently skewing local times
        raise ValueError("timestamp must be timezone-aware")
    at = timestamp.astimezone(UTC)
    try:
        signer = Webhook(secret)
    except (binascii.Error, EmptyWebhookSecretError, RuntimeError, ValueError):
        raise InvalidSecret("webhook secret is not valid base64 (whsec_...)") from None
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": signer.sign(msg_id, at, body.decode("utf-8")),
    }
