"""Signatures any Standard Webhooks library verifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from agents.notify.signing import InvalidSecret, signed_headers
from tests.support.webhook_receiver import SECRET

BODY = b'{"type":"asset.completed","data":{"request_id":"r\xc3\xa9q"}}'


def test_headers_verify_with_the_reference_library() -> None:
    now = datetime.now(UTC)
    headers = signed_headers(SECRET, "msg_abc", now, BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "msg_abc"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(BODY, headers)["data"]["request_id"] == "réq"


def test_tampered_body_or_wrong_secret_fails_verification() -> None:
    headers = signed_headers(SECRET, "msg_abc", datetime.now(UTC), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY.replace(b"asset", b"assex"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(BODY, headers)


def test_non_utc_timestamp_signs_the_same_instant() -> None:
    now = datetime.now(UTC)
    local = now.astimezone(timezone(timedelta(hours=-7)))
    assert signed_headers(SECRET, "m", local, BODY) == signed_headers(SECRET, "m", now, BODY)


def test_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        signed_headers(SECRET, "m", datetime(2025, 1, 1), BODY)


@pytest.mark.parametrize("secret", ["whsec_", "whsec_abcde", ""])
def test_invalid_secret_never_echoes_the_secret(secret: str) -> None:
    with pytest.raises(InvalidSecret) as info:
        signed_headers(secret, "m", datetime.now(UTC), BODY)
    assert info.value.code == "webhook.invalid_secret"
    if secret.removeprefix("whsec_"):
        assert secret.removeprefix("whsec_") not in str(info.value)
