"""The demo campaign passes its own embedded brand profile, so `make demo` stays all-green."""

from __future__ import annotations

import asyncio

import yaml

from agents.inference.prompt import render_prompt
from agents.inference.providers.base import ProviderCall
from agents.inference.providers.offline import OfflineProvider
from agents.policy import PolicyError, ProfileBook
from agents.policy.loader import build_policies
from agents.validate.checks.terms import default_detector
from agents.validate.gateway import Gateway
from assetline.dev.demo import DEMO_PROFILE, DEMO_PROFILE_ID, demo_requests, summary_table
from schemas.records import BlobRef, RawAsset, Verdict


def test_every_demo_asset_passes_the_demo_profile_including_language() -> None:
    book = ProfileBook(build_policies(yaml.safe_load(DEMO_PROFILE), "demo.yaml"))
    gateway = Gateway(book, {}, detector=default_detector())
    provider = OfflineProvider()
    requests = demo_requests("t")
    assert {r.brand_profile_id for r in requests} == {DEMO_PROFILE_ID}

    async def judge_all() -> list[tuple[str, Verdict, list[str]]]:
        out = []
        for request in requests:
            made = await provider.generate(ProviderCall(request, render_prompt(request), "offline"))
            blob = BlobRef(
                uri="file:///x", sha256="0" * 64, size=len(made.data), media_type=made.media_type
            )
            raw = RawAsset(
                request=request,
                blob=blob,
                provider="offline",
                model_version=made.model_version,
                latency_ms=1.0,
            )
            policy = gateway.policy_for(raw)
            assert not isinstance(policy, PolicyError)
            report = (await gateway.inspect(raw, made.data, policy)).report
            codes = [c.code for c in report.checks]
            out.append((request.kind.value, report.verdict, codes))
        return out

    results = asyncio.run(judge_all())
    assert [verdict for _, verdict, _ in results] == [Verdict.PASS] * 12
    text_codes = next(codes for kind, _, codes in results if kind == "TEXT")
    assert {"text.prohibited", "text.language", "text.length"} <= set(text_codes)
    image_codes = next(codes for kind, _, codes in results if kind == "IMAGE")
    assert {"image.formats", "image.dimensions", "image.transparency"} <= set(image_codes)


def test_summary_table_shows_the_attempt() -> None:
    requests = demo_requests("t")[:1]
    table = summary_table(requests, {})
    assert table.splitlines()[0].split() == [
        "request",
        "kind",
        "status",
        "attempt",
        "delivered",
        "file",
        "latency",
        "ms",
    ]
    assert "MISSING" in table
