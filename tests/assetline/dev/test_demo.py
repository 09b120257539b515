"""The demo campaign passes its own embedded brand profile, so `make demo` stays all-green."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import yaml

from agents.inference.prompt import render_prompt
from agents.inference.providers.base import ProviderCall
from agents.inference.providers.offline import OfflineProvider
from agents.policy import PolicyError, ProfileBook
from agents.policy.loader import build_policies
from agents.validate.checks.terms import default_detector
from agents.validate.gateway import Gateway
from assetline.dev.demo import (
    DEMO_PROFILE,
    DEMO_PROFILE_ID,
    delivered_count,
    demo_requests,
    quiet_leader_elections,
    summary_table,
    uses_external_broker,
    write_demo_profiles,
)
from schemas.records import AssetCompleted, BlobRef, CompletionStatus, RawAsset, Verdict


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


def test_leader_election_noise_is_dropped_only_while_quieted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("aiokafka.consumer.fetcher")
    with caplog.at_level(logging.WARNING, logger="aiokafka"), quiet_leader_elections():
        log.warning("NotLeaderForPartitionError for topic p.raw")
        log.warning("something else")
    log.warning("NotLeaderForPartitionError after the demo")
    assert [r.getMessage() for r in caplog.records] == [
        "something else",
        "NotLeaderForPartitionError after the demo",
    ]


def test_the_demo_profile_is_written_whatever_folder_was_configured(tmp_path: Path) -> None:
    profiles = write_demo_profiles(tmp_path / "run")
    assert [p.name for p in profiles.iterdir()] == [f"{DEMO_PROFILE_ID}.yaml"]
    assert (profiles / f"{DEMO_PROFILE_ID}.yaml").read_text(encoding="utf-8") == DEMO_PROFILE


def test_a_given_bootstrap_flag_or_variable_means_no_local_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("ASSETLINE_KAFKA_BOOTSTRAP", raising=False)
    assert not uses_external_broker(None)
    assert uses_external_broker("kafka:9092")
    monkeypatch.setenv("ASSETLINE_KAFKA_BOOTSTRAP", "kafka:9092")
    assert uses_external_broker(None)


def test_delivered_counts_the_latest_completion_of_each_request() -> None:
    def done(rid: str, status: CompletionStatus) -> AssetCompleted:
        return AssetCompleted(
            request_id=rid,
            idempotency_key=rid,
            tenant="acme",
            campaign_id="c",
            kind="TEXT",
            status=status,
        )

    completions = {
        "a": [done("a", CompletionStatus.DELIVERED)],
        "b": [done("b", CompletionStatus.DELIVERED), done("b", CompletionStatus.REJECTED)],
        "c": [done("c", CompletionStatus.FALLBACK)],
    }
    assert delivered_count(completions) == 1


def test_a_request_held_for_a_person_is_in_review_not_missing() -> None:
    held, lost = demo_requests("t")[:2]
    table = summary_table([held, lost], {}, in_review={held.request_id})
    rows = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert "IN_REVIEW" in rows[held.request_id]
    assert "waiting for a person" in rows[held.request_id]
    assert "MISSING" in rows[lost.request_id]
