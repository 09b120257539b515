"""The suite: kind filtering, crash containment, verdicts, and one decode per image."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from PIL import Image

from agents.validate.checks import default_checks
from agents.validate.checks._base import Check, Subject
from agents.validate.suite import run_suite, verdict
from schemas.records import AssetKind, CheckResult, Constraints, GenerationRequest, Verdict


def subject(kind: AssetKind, data: bytes, **constraints: object) -> Subject:
    request = GenerationRequest(
        request_id="r-1",
        idempotency_key="k-1",
        tenant="acme",
        campaign_id="c-1",
        kind=kind,
        prompt_template="anything",
        constraints=Constraints.model_validate(constraints),
    )
    return Subject(request=request, data=data, media_type="application/octet-stream")


@dataclass(frozen=True)
class Fixed:
    """A stub check with a fixed outcome, for the suite's own behaviour."""

    code: str
    kinds: frozenset[AssetKind]
    passed: bool = True

    def __call__(self, subject: Subject) -> CheckResult:
        return CheckResult(code=self.code, passed=self.passed, message="fixed")


@dataclass(frozen=True)
class Crashes:
    code: str = "stub.crashes"
    kinds: frozenset[AssetKind] = frozenset(AssetKind)

    def __call__(self, subject: Subject) -> CheckResult:
        raise RuntimeError("boom")


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, "PNG")
    return buffer.getvalue()


def test_runs_only_checks_for_the_request_kind_in_order() -> None:
    checks: list[Check] = [
        Fixed("a.text", frozenset({AssetKind.TEXT})),
        Fixed("b.image", frozenset({AssetKind.IMAGE})),
        Fixed("c.both", frozenset({AssetKind.TEXT, AssetKind.IMAGE})),
    ]
    results = run_suite(subject(AssetKind.TEXT, b"hi"), checks)
    assert [r.code for r in results] == ["a.text", "c.both"]


def test_a_crashing_check_is_a_failed_result_and_the_rest_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    checks: list[Check] = [
        Fixed("before", frozenset(AssetKind)),
        Crashes(),
        Fixed("after", frozenset(AssetKind)),
    ]
    results = run_suite(subject(AssetKind.JSON, b"{}"), checks)

    assert [r.code for r in results] == ["before", "stub.crashes", "after"]
    crashed = results[1]
    assert not crashed.passed
    assert crashed.message == "check crashed: RuntimeError: boom"
    assert "stub.crashes crashed" in caplog.text
    assert verdict(results) is Verdict.FAIL


def test_verdict() -> None:
    ok = CheckResult(code="x", passed=True, message="ok")
    bad = CheckResult(code="y", passed=False, message="bad")
    assert verdict([ok, ok]) is Verdict.PASS
    assert verdict([ok, bad]) is Verdict.FAIL
    assert verdict([]) is Verdict.PASS  # nothing applied, nothing failed


def test_default_checks_cover_every_kind() -> None:
    codes = {kind: [c.code for c in default_checks() if kind in c.kinds] for kind in AssetKind}
    assert codes == {
        AssetKind.IMAGE: [
            "image.decodes",
            "image.format",
            "image.size",
            "image.container",
            "image.animated",
        ],
        AssetKind.TEXT: ["text.not_empty", "text.max_chars"],
        AssetKind.JSON: ["json.parses", "json.schema"],
        AssetKind.CODE: ["json.parses", "json.schema", "code.syntax"],
    }


def test_default_suite_decodes_an_image_once(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []
    real_open = Image.open

    def counting_open(*args: object, **kwargs: object) -> Image.Image:
        opened.append(1)
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image, "open", counting_open)
    checks = default_checks()
    s = subject(AssetKind.IMAGE, png(320, 200), format="png", width=320, height=200)

    results = run_suite(s, checks)

    assert [(r.code, r.passed) for r in results] == [
        ("image.decodes", True),
        ("image.format", True),
        ("image.size", True),
        ("image.container", True),
        ("image.animated", True),
    ]
    assert len(opened) == 1


def test_default_suite_honours_max_pixels() -> None:
    s = subject(AssetKind.IMAGE, png(200, 200))
    results = run_suite(s, default_checks(max_pixels=10_000))
    assert verdict(results) is Verdict.FAIL
    assert "above the limit of 10000" in results[0].message
