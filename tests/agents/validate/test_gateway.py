"""The gateway: a request's brand policy picks the checks, then (maybe) the AI judge runs."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json

import pytest
from PIL import Image

from agents.inference.providers.base import Generated, ProviderError, Usage
from agents.policy import DEFAULT_POLICY, Policy, PolicyError, ProfileBook
from agents.policy.loader import build_policies
from agents.policy.profile import BrandProfile
from agents.validate.checks import ImageProber
from agents.validate.checks.terms import english_words
from agents.validate.gateway import Gateway, JudgeConfigError, build_checks
from schemas.records import (
    AlertKind,
    AssetKind,
    BlobRef,
    Constraints,
    Disposition,
    GenerationRequest,
    RawAsset,
    ValidationReport,
    Verdict,
)
from streams.blobs import BlobMissingError
from streams.limits import AssetLimits
from tests.support.scripted_provider import ScriptedProvider

PROFILE = {
    "id": "acme",
    "palette": {"colors": ["#E4002B"], "max_delta_e": 10, "min_share": 0.8},
    "text": {"prohibited": ["free"], "required": ["Terms apply."]},
    "judge": {
        "provider": "judge",
        "model": "judge-mini",
        "rubric": "On brand?",
        "price": {"input_per_1k": 1.0, "output_per_1k": 2.0},
    },
}


def book(profile: dict[str, object] = PROFILE) -> ProfileBook:
    brand = BrandProfile.model_validate(profile)
    policy = Policy.model_validate(
        {**brand.model_dump(exclude={"campaigns", "label"}), "label": brand.id}
    )
    return ProfileBook({(brand.id, None): policy})


def verdict_json(verdict: str, *reasons: str) -> Generated:
    body = json.dumps({"verdict": verdict, "score": 0.9, "reasons": list(reasons)})
    return Generated(body.encode(), "application/json", "judge", "judge-mini", Usage(1000, 500))


def raw(kind: AssetKind, data: bytes, media_type: str, profile: str | None = "acme") -> RawAsset:
    digest = hashlib.sha256(data).hexdigest()
    request = GenerationRequest(
        request_id="r-1",
        idempotency_key="k-1",
        tenant="acme",
        campaign_id="spring",
        kind=kind,
        prompt_template="p",
        constraints=Constraints(format="png") if kind is AssetKind.IMAGE else Constraints(),
        brand_profile_id=profile,
    )
    blob = BlobRef(uri=f"file:///b/{digest}", sha256=digest, size=len(data), media_type=media_type)
    return RawAsset(
        request=request, blob=blob, provider="offline", model_version="offline-1", latency_ms=1.0
    )


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, "PNG")
    return buffer.getvalue()


def inspect(
    gateway: Gateway, asset: RawAsset, data: bytes
) -> tuple[Verdict, list[str], ValidationReport]:
    policy = gateway.policy_for(asset)
    assert not isinstance(policy, PolicyError)
    validated = asyncio.run(gateway.inspect(asset, data, policy))
    report = validated.report
    return report.verdict, [c.code for c in report.checks if not c.passed], report


def test_policy_checks_are_added_to_the_request_constraint_checks() -> None:
    policy = book().policies[("acme", None)]
    codes = [check.code for check in build_checks(policy, ImageProber(), None)]
    assert codes[:3] == ["image.decodes", "image.format", "image.size"]
    assert {"palette.brand", "text.prohibited", "text.required"} <= set(codes)
    default = build_checks(DEFAULT_POLICY, ImageProber(), None)
    assert "palette.brand" not in [c.code for c in default]


def test_checks_are_built_at_start_up_not_on_the_first_asset() -> None:
    """The term regexes and the English word list load in the constructor, off the loop."""
    english_words.cache_clear()
    gateway = Gateway(book(), {"judge": ScriptedProvider("judge", [])})
    assert english_words.cache_info().currsize == 1
    policy = book().policies[("acme", None)]
    assert gateway.checks_for(policy) is gateway.checks_for(policy)


def test_animation_is_refused_unless_the_brand_image_policy_allows_it() -> None:
    """Issue 12 item 12: image.animated is in every suite; a profile can allow animations."""
    plain = build_checks(DEFAULT_POLICY, ImageProber(), None)
    (refusing,) = [c for c in plain if c.code == "image.animated"]
    assert refusing.allow is False  # type: ignore[attr-defined]
    allowing_policy = Policy.model_validate(
        {"id": "anim", "label": "anim", "image": {"allow_animation": True}}
    )
    allowing = build_checks(allowing_policy, ImageProber(), None)
    (allowed,) = [c for c in allowing if c.code == "image.animated"]
    assert allowed.allow is True  # type: ignore[attr-defined]


def test_a_retried_judge_puts_every_call_and_its_cost_in_the_report() -> None:
    """The judge goes through the router: a 503 is retried, both calls are in the audit trail."""
    busy = ProviderError("provider.unavailable", "busy", retryable=True, usage=Usage(500, 0))
    judge = ScriptedProvider("judge", [busy, verdict_json("pass")])
    gateway = Gateway(book(), {"judge": judge})
    data = b"Trail shoes that grip. Terms apply."
    verdict, failed, report = inspect(gateway, raw(AssetKind.TEXT, data, "text/plain"), data)
    assert (verdict, failed) == (Verdict.PASS, [])
    assert len(judge.calls) == 2
    assert [(a.purpose, a.code) for a in report.attempts] == [
        ("judge", "provider.unavailable"),
        ("judge", None),
    ]
    assert report.cost == pytest.approx(0.5 + (1.0 + 1.0))  # the billed failure counts too


def test_the_judge_breaker_alert_is_handed_to_the_stage_once() -> None:
    down = ProviderError("provider.unavailable", "down", retryable=True)
    judge = {**PROFILE["judge"], "max_retries": 0}  # type: ignore[dict-item]
    gateway = Gateway(
        book({**PROFILE, "judge": judge}), {"judge": ScriptedProvider("judge", [down])}
    )
    data = b"Trail shoes that grip. Terms apply."
    for _ in range(5):  # the default breaker opens after 5 consecutive failures
        verdict, failed, _ = inspect(gateway, raw(AssetKind.TEXT, data, "text/plain"), data)
        assert (verdict, failed) == (Verdict.FAIL, ["judge.error"])
    alerts = gateway.drain_alerts()
    assert [a.kind for a in alerts].count(AlertKind.BREAKER_OPENED) == 1
    assert gateway.drain_alerts() == []
    _, failed, report = inspect(gateway, raw(AssetKind.TEXT, data, "text/plain"), data)
    assert failed == ["judge.unavailable"]
    assert report.attempts[-1].code == "breaker.open"


def test_a_passing_text_is_judged_and_the_judge_cost_is_recorded() -> None:
    judge = ScriptedProvider("judge", [verdict_json("pass", "friendly")])
    gateway = Gateway(book(), {"judge": judge})
    data = b"Trail shoes that grip. Terms apply."
    verdict, failed, report = inspect(gateway, raw(AssetKind.TEXT, data, "text/plain"), data)
    assert (verdict, failed) == (Verdict.PASS, [])
    assert len(judge.calls) == 1
    assert report.profile == "acme"
    assert report.cost == pytest.approx(1.0 + 1.0)
    (attempt,) = report.attempts
    assert (attempt.purpose, attempt.model) == ("judge", "judge-mini")


def test_a_text_that_already_failed_is_not_judged() -> None:
    judge = ScriptedProvider("judge", [verdict_json("pass")])
    gateway = Gateway(book(), {"judge": judge})
    data = b"Totally FREE shoes. Terms apply."
    verdict, failed, report = inspect(gateway, raw(AssetKind.TEXT, data, "text/plain"), data)
    assert (verdict, failed) == (Verdict.FAIL, ["text.prohibited"])
    assert judge.calls == []
    assert report.cost == 0.0


def test_a_judge_fail_fails_the_asset_with_its_reasons() -> None:
    judge = ScriptedProvider("judge", [verdict_json("fail", "too pushy")])
    gateway = Gateway(book(), {"judge": judge})
    data = b"Buy now. Terms apply."
    verdict, failed, report = inspect(gateway, raw(AssetKind.TEXT, data, "text/plain"), data)
    assert (verdict, failed) == (Verdict.FAIL, ["judge.verdict"])
    check = report.checks[-1]
    assert check.repairable
    assert "too pushy" in check.message


def test_images_get_the_palette_check_and_the_judge_sees_the_image() -> None:
    judge = ScriptedProvider("judge", [verdict_json("pass")])
    gateway = Gateway(book(), {"judge": judge})
    red = png((228, 0, 43))
    verdict, failed, _ = inspect(gateway, raw(AssetKind.IMAGE, red, "image/png"), red)
    assert (verdict, failed) == (Verdict.PASS, [])
    assert [a.data for a in judge.calls[0].attachments] == [red]
    green = png((20, 170, 60))
    verdict, failed, _ = inspect(gateway, raw(AssetKind.IMAGE, green, "image/png"), green)
    assert (verdict, failed) == (Verdict.FAIL, ["palette.brand"])
    assert len(judge.calls) == 1  # not asked about the green one


def test_judge_when_always_is_asked_about_failing_assets_too() -> None:
    profile = {**PROFILE, "judge": {**PROFILE["judge"], "when": "always"}}  # type: ignore[dict-item]
    judge = ScriptedProvider("judge", [verdict_json("pass")])
    gateway = Gateway(book(profile), {"judge": judge})
    data = b"FREE. Terms apply."
    verdict, failed, _ = inspect(gateway, raw(AssetKind.TEXT, data, "text/plain"), data)
    assert (verdict, failed) == (Verdict.FAIL, ["text.prohibited"])
    assert len(judge.calls) == 1


def test_unknown_profile_is_a_final_error_without_reading_or_judging() -> None:
    judge = ScriptedProvider("judge")
    gateway = Gateway(book(), {"judge": judge})
    asset = raw(AssetKind.TEXT, b"x", "text/plain", profile="globex")
    fetched: list[BlobRef] = []

    def fetch(blob: BlobRef) -> bytes:
        fetched.append(blob)
        return b"x"

    validated, decision = asyncio.run(gateway.assess(asset, fetch))
    assert validated.report.verdict is Verdict.ERROR
    assert validated.report.checks[0].code == "policy.unknown_profile"
    assert "'globex'" in validated.report.checks[0].message
    assert validated.disposition is decision.disposition is Disposition.REJECTED
    assert (fetched, judge.calls) == ([], [])


def test_assess_reads_the_blob_and_triages() -> None:
    gateway = Gateway(book(), {"judge": ScriptedProvider("judge", [verdict_json("pass")])})
    data = b"Totally free shoes. Terms apply."
    validated, decision = asyncio.run(
        gateway.assess(raw(AssetKind.TEXT, data, "text/plain"), lambda blob: data)
    )
    assert validated.disposition is Disposition.REGENERATE
    assert decision.retry is not None
    assert decision.retry.attempt == 2
    assert decision.retry.feedback[0].startswith("text.prohibited")


def test_a_blob_that_cannot_be_read_is_a_final_error() -> None:
    gateway = Gateway(book(), {"judge": ScriptedProvider("judge")})

    def fetch(blob: BlobRef) -> bytes:
        raise BlobMissingError(f"{blob.uri} is gone")

    validated, decision = asyncio.run(
        gateway.assess(raw(AssetKind.TEXT, b"x", "text/plain"), fetch)
    )
    assert validated.report.checks[0].code == "blob.missing"
    assert decision.disposition is Disposition.REJECTED


@pytest.mark.parametrize("lie", [False, True])
def test_an_asset_over_its_kinds_cap_is_a_final_error_and_never_parsed(lie: bool) -> None:
    """Issue 12 #4: a 900 MB JSON document spent 16 s of the event loop in validation.

    Refused by the recorded size before reading; a record that understates the size is
    caught by the bytes' real size, still before any check parses them.
    """
    gateway = Gateway(book(), {"judge": ScriptedProvider("judge")}, limits=AssetLimits(json=1000))
    data = b"[" + b'"x",' * 400 + b'"x"]'  # 1,605 bytes of valid JSON
    asset = raw(AssetKind.JSON, data, "application/json", profile=None)
    if lie:
        assert asset.blob is not None
        asset = asset.model_copy(update={"blob": asset.blob.model_copy(update={"size": 10})})
    fetched: list[BlobRef] = []

    def fetch(blob: BlobRef) -> bytes:
        fetched.append(blob)
        return data

    validated, decision = asyncio.run(gateway.assess(asset, fetch))
    assert validated.report.verdict is Verdict.ERROR
    (check,) = validated.report.checks  # no check ran on the bytes
    assert check.code == "asset.too_large"
    assert "1605 bytes exceeds the cap of 1000 bytes" in check.message
    assert decision.disposition is Disposition.REJECTED
    assert len(fetched) == (1 if lie else 0)
    small = raw(AssetKind.JSON, b"[]", "application/json", profile=None)
    ok, _ = asyncio.run(gateway.assess(small, lambda blob: b"[]"))
    assert ok.report.verdict is Verdict.PASS


def test_a_judge_naming_a_provider_the_routing_file_lacks_fails_the_start() -> None:
    with pytest.raises(JudgeConfigError, match="'judge'"):
        Gateway(book(), {})


def test_check_sets_are_built_once_per_policy() -> None:
    gateway = Gateway(book(), {"judge": ScriptedProvider("judge")})
    policy = book().policies[("acme", None)]
    assert gateway.checks_for(policy) is gateway.checks_for(policy)


def test_every_policy_shares_one_prober_so_one_decoded_image_is_held() -> None:
    profile = {**PROFILE, "campaigns": {"spring": {"palette": {"min_share": 0.9}}}}
    policies = build_policies(profile, "acme.yaml")
    assert len(policies) == 2
    gateway = Gateway(ProfileBook(policies), {"judge": ScriptedProvider("judge")})
    probers = {
        id(check.prober)  # type: ignore[attr-defined]
        for policy in gateway.book.policies.values()
        for check in gateway.checks_for(policy)
        if hasattr(check, "prober")
    }
    assert probers == {id(gateway.prober)}
