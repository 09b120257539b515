"""The dry-run report folds outcomes per check and per skip reason, with sorted request ids."""

from __future__ import annotations

import json

from assetline.policy_check.report import (
    AssetOutcome,
    build_report,
    render_report,
    report_json,
)
from schemas.records import CheckResult


def _r(code: str, passed: bool, message: str = "") -> CheckResult:
    return CheckResult(code=code, passed=passed, message=message or code)


OUTCOMES = [
    AssetOutcome("r3", 1, (_r("text.not_empty", True), _r("text.prohibited", False, "'free'"))),
    AssetOutcome("r1", 1, (_r("text.not_empty", True), _r("text.prohibited", False, "'cure'"))),
    AssetOutcome("r2", 1, (_r("text.not_empty", True), _r("text.prohibited", True))),
    AssetOutcome("r4", 1, skipped="blob.missing"),
    AssetOutcome("r5", 2, skipped="profile.other"),
    # the same request at a second attempt failing the same check is listed once
    AssetOutcome("r1", 2, (_r("text.not_empty", True), _r("text.prohibited", False, "'x'"))),
]


def test_counts_per_check_failures_and_skips_by_reason() -> None:
    report = build_report(OUTCOMES, profile="acme", topic="line.raw", seconds=2.0)
    assert report.examined == 6
    assert report.checked == 4
    assert report.would_fail == ["r1", "r3"]
    prohibited = report.checks["text.prohibited"]
    assert (prohibited.checked, prohibited.failed) == (4, 3)
    assert prohibited.request_ids == ["r1", "r3"]
    assert prohibited.messages == {"r3": "'free'", "r1": "'cure'"}
    not_empty = report.checks["text.not_empty"]
    assert (not_empty.checked, not_empty.failed, not_empty.request_ids) == (4, 0, [])
    assert {k: v.request_ids for k, v in report.skipped.items()} == {
        "blob.missing": ["r4"],
        "profile.other": ["r5"],
    }
    assert report.assets_per_s == 2.0


def test_json_is_plain_data_with_every_number() -> None:
    report = build_report(OUTCOMES, profile="acme", topic="line.raw", seconds=2.0, notes=["n"])
    data = json.loads(json.dumps(report_json(report)))
    assert data["would_fail"] == {"count": 2, "request_ids": ["r1", "r3"]}
    assert data["checks"]["text.prohibited"] == {
        "checked": 4,
        "failed": 3,
        "request_ids": ["r1", "r3"],
        "messages": {"r1": "'cure'", "r3": "'free'"},
    }
    assert data["skipped"]["blob.missing"] == {"count": 1, "request_ids": ["r4"]}
    assert (data["examined"], data["checked"], data["assets_per_s"]) == (6, 4, 2.0)
    assert data["notes"] == ["n"]


def test_table_lists_failing_checks_first_and_elides_long_id_lists() -> None:
    many = [AssetOutcome(f"q{i:02d}", 1, (_r("image.format", False),)) for i in range(12)]
    report = build_report([*OUTCOMES, *many], profile="acme", topic="line.completed")
    lines = render_report(report, max_ids=10).splitlines()
    assert lines[0] == (
        "policy dry run: profile acme on line.completed: 16 of 18 asset(s) checked, "
        "14 would now fail"
    )
    rows = [line.split()[0] for line in lines[3:7]]
    assert rows == ["image.format", "text.prohibited", "text.not_empty", "skipped:"]
    assert lines[3].endswith("q09, ... (+2)")
    assert "r1, r3" in lines[4]


def test_an_empty_range_is_a_report_of_nothing() -> None:
    report = build_report([], profile="acme", topic="line.raw")
    assert (report.examined, report.checked, report.would_fail, report.assets_per_s) == (
        0,
        0,
        [],
        0.0,
    )
    assert "0 of 0 asset(s) checked, 0 would now fail" in render_report(report)
