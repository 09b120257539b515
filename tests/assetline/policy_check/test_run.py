"""Checks on past assets: real blob store, in-process and in a real process pool."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agents.validate.checks.image import ImageProber
from agents.validate.gateway import build_checks
from assetline.policy_check.report import AssetOutcome, build_report
from assetline.policy_check.run import (
    OTHER_PROFILE,
    DryRunPolicies,
    PolicyCheckError,
    SuitePool,
    check_assets,
    load_dry_run_policies,
)
from assetline.policy_check.sources import GENERATION_ERROR, PastAsset
from schemas.records import AssetKind, BlobRef, GenerationRequest
from streams.blobs import LocalBlobStore
from streams.limits import AssetLimits

STRICT = {
    "id": "acme",
    "text": {"prohibited": ["free"]},
    "judge": {"provider": "nowhere", "model": "m", "rubric": "on brand"},
}


def _request(rid: str, profile: str | None = "acme", attempt: int = 1) -> GenerationRequest:
    return GenerationRequest(
        request_id=rid,
        idempotency_key=rid,
        tenant="t",
        campaign_id="c",
        kind=AssetKind.TEXT,
        prompt_template="Copy",
        brand_profile_id=profile,
        attempt=attempt,
    )


@pytest.fixture
def strict(tmp_path: Path) -> DryRunPolicies:
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(STRICT))
    return load_dry_run_policies(path)


def _assets(store: LocalBlobStore) -> list[PastAsset]:
    def put(text: str) -> BlobRef:
        return store.put(text.encode(), "text/plain")

    gone = BlobRef(uri="file:///nowhere", sha256="0" * 64, size=5, media_type="text/plain")
    return [
        PastAsset("bad", 1, _request("bad"), put("Get it FREE today")),
        PastAsset("good", 1, _request("good"), put("A calm morning by the sea")),
        PastAsset("gone", 1, _request("gone"), gone),
        PastAsset("other", 1, _request("other", "globex"), put("free as in speech")),
        PastAsset("err", 1, _request("err"), None, GENERATION_ERROR),
        PastAsset("big", 1, _request("big"), put("x" * 100)),
    ]


def test_judge_is_left_out_and_the_file_id_is_the_profile(strict: DryRunPolicies) -> None:
    assert strict.profile_ids == {"acme"}
    assert all(policy.judge is None for policy in strict.book.policies.values())
    assert strict.notes == ("acme: the AI judge is not asked in a dry run (it is paid)",)


def test_a_judge_giving_sentiment_is_left_out_and_the_note_says_the_lexicon_scores(
    tmp_path: Path,
) -> None:
    judge = {"provider": "p", "model": "m", "rubric": "r", "sentiment": True}
    path = tmp_path / "acme.json"
    path.write_text(json.dumps({"text": {"min_sentiment": 0.2}, "judge": judge}))
    policies = load_dry_run_policies(path)
    assert policies.notes == (
        "acme: the AI judge is not asked in a dry run (it is paid)",
        "acme: text.sentiment uses the lexicon's score, not the judge's",
    )
    (policy,) = policies.book.policies.values()
    (check,) = [
        c
        for c in build_checks(policy, ImageProber(), None)
        if c.code == "text.sentiment" and AssetKind.TEXT in c.kinds
    ]
    assert (check.min_score, check.from_judge) == (0.2, False)  # type: ignore[attr-defined]


def test_every_asset_applies_the_profile_to_other_profiles_requests(tmp_path: Path) -> None:
    path = tmp_path / "acme.json"
    path.write_text(json.dumps({"text": {"prohibited": ["free"]}}))
    policies = load_dry_run_policies(path, every_asset=True)
    policy = policies.policy_for(_request("x", None))
    assert policy is not None
    assert policy.label == "acme"
    assert load_dry_run_policies(path).policy_for(_request("x", "globex")) is None


def test_a_bad_profile_file_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "acme.json"
    path.write_text(json.dumps({"text": {"nonsense": 1}}))
    with pytest.raises(PolicyCheckError, match="nonsense"):
        load_dry_run_policies(path)


@pytest.mark.parametrize("workers", [0, 1])
def test_outcomes_per_asset(tmp_path: Path, strict: DryRunPolicies, workers: int) -> None:
    store = LocalBlobStore(tmp_path / "blobs", cache_bytes=0)
    limits = AssetLimits(text=50)

    async def go() -> list[AssetOutcome]:
        with SuitePool(strict, workers=workers) as pool:
            return list(await check_assets([_assets(store)], strict, store, pool, limits))

    outcomes = asyncio.run(go())
    report = build_report(outcomes, profile="acme", topic="t.raw")
    assert report.examined == 6
    assert report.would_fail == ["bad", "big"]
    assert report.checks["text.prohibited"].request_ids == ["bad"]
    assert report.checks["text.prohibited"].checked == 2
    assert report.checks["asset.too_large"].request_ids == ["big"]
    assert {k: v.request_ids for k, v in report.skipped.items()} == {
        "blob.missing": ["gone"],
        GENERATION_ERROR: ["err"],
        OTHER_PROFILE: ["other"],
    }
