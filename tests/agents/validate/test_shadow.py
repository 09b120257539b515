"""Shadow copies in validate: judged like any asset, recorded with what triage would do, no more."""

from __future__ import annotations

import asyncio
import hashlib

from agents.policy import Policy, ProfileBook
from agents.validate.gateway import Gateway
from agents.validate.shadow import is_shadow, validate_shadow
from schemas.records import (
    AssetKind,
    BlobRef,
    Disposition,
    GenerationRequest,
    RawAsset,
    ValidatedAsset,
    Verdict,
)

POLICY = Policy.model_validate(
    {
        "id": "acme",
        "label": "acme",
        "max_attempts": 3,
        "review": True,
        "text": {"prohibited": ["free"]},
    }
)


def shadow_raw(text: bytes, rung: str | None = "shadow") -> tuple[RawAsset, bytes]:
    request = GenerationRequest(
        request_id="r-1",
        idempotency_key="k",
        tenant="acme",
        campaign_id="c",
        kind=AssetKind.TEXT,
        prompt_template="Say hello",
        brand_profile_id="acme",
    )
    blob = BlobRef(
        uri="mem://x",
        sha256=hashlib.sha256(text).hexdigest(),
        size=len(text),
        media_type="text/plain",
    )
    raw = RawAsset(
        request=request,
        blob=blob,
        provider="shade",
        model_version="shade-3",
        latency_ms=1.0,
        rung=rung,
    )
    return raw, text


def judge(text: bytes) -> tuple[ValidatedAsset, list[list[tuple[str, bytes]]], int]:
    gateway = Gateway(ProfileBook({("acme", None): POLICY}), None)
    raw, data = shadow_raw(text)
    sent: list[ValidatedAsset] = []
    headers: list[list[tuple[str, bytes]]] = []
    alerted = 0

    async def send(validated: ValidatedAsset, hs: list[tuple[str, bytes]]) -> None:
        sent.append(validated)
        headers.append(hs)

    async def send_alerts() -> None:
        nonlocal alerted
        alerted += 1

    result = asyncio.run(validate_shadow(raw, gateway, lambda _ref: data, send, send_alerts))
    assert sent == [result]
    return result, headers, alerted


def test_a_passing_shadow_is_recorded_as_it_would_have_been_approved() -> None:
    validated, headers, alerted = judge(b"Trail shoes that grip.")
    assert validated.report.verdict is Verdict.PASS
    assert validated.disposition is Disposition.APPROVED
    assert validated.raw.rung == "shadow"
    assert headers == [[("assetline.shadow", b"true")]]
    assert alerted == 1


def test_a_repairable_failure_is_only_recorded_as_would_re_generate() -> None:
    validated, _, _ = judge(b"Get them free today.")
    assert validated.report.verdict is Verdict.FAIL
    assert validated.disposition is Disposition.REGENERATE  # what triage would do; nothing sent


def test_only_shadow_records_are_shadows() -> None:
    assert is_shadow(shadow_raw(b"x")[0])
    assert not is_shadow(shadow_raw(b"x", "canary")[0])
    assert not is_shadow(shadow_raw(b"x", None)[0])
