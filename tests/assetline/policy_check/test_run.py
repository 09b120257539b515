"""Checks on past assets: real blob store, in-process and in a real process pool."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agents.inference.prompt import render_prompt
from agents.inference.providers.base import ProviderCall
from agents.inference.providers.offline import OfflineProvider
from agents.validate.checks import Subject
from agents.validate.checks.image import DEFAULT_MAX_PIXELS, ImageProber
from agents.validate.checks.terms import default_detector
from agents.validate.gateway import build_checks
from agents.validate.suite import run_suite
from agents.validate.validate_one import bounded
from assetline.policy_check import run
from assetline.policy_check.report import AssetOutcome, build_report, report_json
from assetline.policy_check.run import (
    OTHER_PROFILE,
    DryRunPolicies,
    LocalSuite,
    PolicyCheckError,
    SuitePool,
    check_assets,
    load_dry_run_policies,
)
from assetline.policy_check.sources import GENERATION_ERROR, PastAsset
from schemas.records import AssetKind, BlobRef, CheckResult, Constraints, GenerationRequest
from streams.blobs import BlobError, LocalBlobStore
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


MIXED = {
    "id": "acme",
    "image": {"formats": ["png"], "min_width": 256, "aspect_ratio": "1:1"},
    "palette": {"colors": ["#f5f5eb", "#fae65a", "#339c71"], "max_delta_e": 6, "min_share": 0.5},
    "text": {"prohibited": ["guaranteed"], "max_chars": 2000, "language": "en"},
}
COPY = [
    "A calm morning by the sea, with coffee and a good book.",
    "Our new jacket keeps you warm on the coldest evenings of the year.",
    "Découvrez notre nouvelle collection de printemps dès aujourd'hui.",
    "Fresh bread, baked every morning in our kitchen.",
]


def _mixed_corpus(store: LocalBlobStore) -> list[PastAsset]:
    """Offline images (some off the palette, some the wrong shape), copy (some banned, some
    French), and the skips: a missing blob, another profile, a generation error."""
    provider = OfflineProvider()
    assets = []
    for i in range(20):
        wide = i % 7 == 3
        request = _request(f"img{i}").model_copy(
            update={
                "kind": AssetKind.IMAGE,
                "prompt_template": "Hero banner for ${persona}",
                "variables": {"persona": f"persona {i}"},
                "constraints": Constraints(width=1024 if wide else 512, height=512, format="png"),
            }
        )
        call = ProviderCall(request, render_prompt(request), "offline")
        data = asyncio.run(provider.generate(call)).data
        assets.append(PastAsset(request.request_id, 1, request, store.put(data, "image/png")))
    for i in range(21):  # 41 checked: the last chunk is partial
        text = COPY[i % len(COPY)] + (" Results guaranteed." if i % 5 == 1 else "")
        ref = store.put(text.encode(), "text/plain")
        assets.append(PastAsset(f"txt{i}", 1, _request(f"txt{i}"), ref))
    gone = BlobRef(uri="file:///nowhere", sha256="0" * 64, size=5, media_type="text/plain")
    assets.append(PastAsset("gone", 1, _request("gone"), gone))
    other = store.put(b"Results guaranteed.", "text/plain")
    assets.append(PastAsset("other", 1, _request("other", "globex"), other))
    assets.append(PastAsset("err", 1, _request("err"), None, GENERATION_ERROR))
    return assets[::2] + assets[1::2]  # images and copy mixed in every chunk


def _slow_path(
    policies: DryRunPolicies, store: LocalBlobStore, assets: list[PastAsset]
) -> list[AssetOutcome]:
    """One asset at a time, its checks built for it, in this process: the reference."""
    out = []
    for asset in assets:
        policy = None if asset.request is None else policies.policy_for(asset.request)
        if asset.skipped or asset.request is None or asset.blob is None:
            out.append(AssetOutcome(asset.request_id, asset.attempt, skipped=asset.skipped))
            continue
        if policy is None:
            out.append(AssetOutcome(asset.request_id, asset.attempt, skipped=OTHER_PROFILE))
            continue
        try:
            data = store.get(asset.blob)
        except BlobError as exc:
            out.append(AssetOutcome(asset.request_id, asset.attempt, skipped=exc.code))
            continue
        checks = build_checks(policy, ImageProber(DEFAULT_MAX_PIXELS), default_detector())
        subject = Subject(request=asset.request, data=data, media_type=asset.blob.media_type)
        results = tuple(bounded(r) for r in run_suite(subject, checks))
        out.append(AssetOutcome(asset.request_id, asset.attempt, results))
    return out


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[DryRunPolicies, LocalBlobStore]:
    root = tmp_path_factory.mktemp("mixed")
    (root / "acme.json").write_text(json.dumps(MIXED))
    return load_dry_run_policies(root / "acme.json"), LocalBlobStore(root / "blobs", cache_bytes=0)


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_chunked_and_pooled_outcomes_are_the_slow_paths(
    mixed: tuple[DryRunPolicies, LocalBlobStore],
    workers: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policies, store = mixed
    assets = _mixed_corpus(store)
    expected = _slow_path(policies, store, assets)
    monkeypatch.setattr(run, "CHUNK", 4)  # many chunks, some partial, across batches

    async def go() -> list[AssetOutcome]:
        with SuitePool(policies, workers=workers) as pool:
            batches = [assets[i : i + 9] for i in range(0, len(assets), 9)]
            return await check_assets(batches, policies, store, pool)

    outcomes = asyncio.run(go())
    key = lambda o: (o.request_id, o.attempt)  # noqa: E731
    assert sorted(outcomes, key=key) == sorted(expected, key=key)
    got, want = (
        report_json(build_report(o, profile="acme", topic="t")) for o in (outcomes, expected)
    )
    assert got == want
    # the corpus exercises failures of several checks, and every skip
    failing = {code for code, tally in want["checks"].items() if tally["failed"]}
    assert {"palette.brand", "image.aspect_ratio", "text.prohibited", "text.language"} <= failing
    assert set(want["skipped"]) == {"blob.missing", OTHER_PROFILE, GENERATION_ERROR}


def test_this_process_takes_a_chunk_when_every_worker_has_two(
    mixed: tuple[DryRunPolicies, LocalBlobStore],
) -> None:
    policies, store = mixed
    (label,) = policies.by_label
    jobs = [
        (label, a.request, a.blob.media_type, store.get(a.blob))
        for a in _mixed_corpus(store)
        if a.request_id.startswith(("img", "txt")) and a.request is not None and a.blob is not None
    ]
    chunks = [jobs[i : i + 10] for i in range(0, 40, 10)]

    async def go() -> tuple[list[list[tuple[CheckResult, ...]]], int, int]:
        with SuitePool(policies, workers=1, share=True) as pool:
            futures = [pool.submit(chunk) for chunk in chunks]  # no await: none has finished
            return [await f for f in futures], pool.ran_here, pool.ran_in_pool

    results, here, in_pool = asyncio.run(go())
    assert (here, in_pool) == (2, 2)
    assert results == [LocalSuite(policies.by_label, DEFAULT_MAX_PIXELS).run(c) for c in chunks]
