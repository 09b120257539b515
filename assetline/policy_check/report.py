"""The dry-run report: per check, how many past assets would now fail, and which requests.

Pure functions over :class:`AssetOutcome` values, so the report is tested without Kafka, blobs
or a pool. An asset that could not be checked (its blob is gone, it was never delivered, it
belongs to another profile) is counted under ``skipped`` by reason, never as a pass or a fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.records import CheckResult


@dataclass(frozen=True)
class AssetOutcome:
    """What the dry run found for one past asset: check results, or why it was not checked."""

    request_id: str
    attempt: int
    results: tuple[CheckResult, ...] = ()
    #: A stable reason code (``blob.missing``, ``profile.other``, ...) when nothing was checked.
    skipped: str | None = None

    @property
    def failed(self) -> bool:
        return self.skipped is None and any(not r.passed for r in self.results)


@dataclass
class CheckTally:
    """One check (or one skip reason): assets it looked at, assets it failed, their requests."""

    checked: int = 0
    failed: int = 0
    request_ids: list[str] = field(default_factory=list)
    #: One failure message per request id (the first seen), so a reader sees why.
    messages: dict[str, str] = field(default_factory=dict)


@dataclass
class DryRunReport:
    profile: str
    topic: str
    examined: int = 0
    checked: int = 0
    would_fail: list[str] = field(default_factory=list)
    checks: dict[str, CheckTally] = field(default_factory=dict)
    skipped: dict[str, CheckTally] = field(default_factory=dict)
    seconds: float = 0.0
    #: Notes on what the dry run left out (a judge, say), printed under the table.
    notes: list[str] = field(default_factory=list)

    @property
    def assets_per_s(self) -> float:
        return self.checked / self.seconds if self.seconds > 0 else 0.0


def _add_id(ids: list[str], request_id: str) -> None:
    if not ids or ids[-1] != request_id:
        ids.append(request_id)


def build_report(
    outcomes: Iterable[AssetOutcome],
    *,
    profile: str,
    topic: str,
    seconds: float = 0.0,
    notes: Sequence[str] = (),
) -> DryRunReport:
    """Fold outcomes into a report; request ids are sorted and listed once per check."""
    report = DryRunReport(profile=profile, topic=topic, seconds=seconds, notes=list(notes))
    failing: set[str] = set()
    for outcome in outcomes:
        report.examined += 1
        if outcome.skipped is not None:
            tally = report.skipped.setdefault(outcome.skipped, CheckTally())
            tally.checked += 1
            tally.failed += 1
            tally.request_ids.append(outcome.request_id)
            continue
        report.checked += 1
        for check in outcome.results:
            tally = report.checks.setdefault(check.code, CheckTally())
            tally.checked += 1
            if not check.passed:
                tally.failed += 1
                tally.request_ids.append(outcome.request_id)
                tally.messages.setdefault(outcome.request_id, check.message)
        if outcome.failed:
            failing.add(outcome.request_id)
    for tally in (*report.checks.values(), *report.skipped.values()):
        tally.request_ids = sorted(set(tally.request_ids))
    report.would_fail = sorted(failing)
    report.checks = dict(sorted(report.checks.items()))
    report.skipped = dict(sorted(report.skipped.items()))
    return report


def report_json(report: DryRunReport) -> dict[str, Any]:
    """The report as plain JSON data (what ``--json PATH`` writes)."""

    def tally(t: CheckTally) -> dict[str, Any]:
        return {
            "checked": t.checked,
            "failed": t.failed,
            "request_ids": t.request_ids,
            "messages": {rid: t.messages[rid] for rid in t.request_ids if rid in t.messages},
        }

    return {
        "profile": report.profile,
        "topic": report.topic,
        "examined": report.examined,
        "checked": report.checked,
        "would_fail": {"count": len(report.would_fail), "request_ids": report.would_fail},
        "checks": {code: tally(t) for code, t in report.checks.items()},
        "skipped": {
            reason: {"count": t.checked, "request_ids": t.request_ids}
            for reason, t in report.skipped.items()
        },
        "seconds": round(report.seconds, 3),
        "assets_per_s": round(report.assets_per_s, 1),
        "notes": report.notes,
    }


def render_report(report: DryRunReport, *, max_ids: int = 10) -> str:
    """A table for people: failing checks first, then the checks that still pass, then skips."""
    lines = [
        f"policy dry run: profile {report.profile} on {report.topic}: "
        f"{report.checked} of {report.examined} asset(s) checked, "
        f"{len(report.would_fail)} would now fail",
        "",
        f"{'check':<28} {'checked':>8} {'fail':>6}  request ids",
    ]

    def ids(found: list[str]) -> str:
        shown = ", ".join(found[:max_ids])
        more = len(found) - max_ids
        return f"{shown}, ... (+{more})" if more > 0 else shown

    ordered = sorted(report.checks.items(), key=lambda item: (-item[1].failed, item[0]))
    for code, t in ordered:
        lines.append(f"{code:<28} {t.checked:>8} {t.failed:>6}  {ids(t.request_ids)}".rstrip())
    for reason, t in report.skipped.items():
        lines.append(f"{'skipped: ' + reason:<28} {t.checked:>8} {'-':>6}  {ids(t.request_ids)}")
    lines.append("")
    lines.append(f"{report.seconds:.2f} s, {report.assets_per_s:.0f} assets/s")
    lines.extend(report.notes)
    return "\n".join(lines)


def dumps(report: DryRunReport) -> str:
    return json.dumps(report_json(report), indent=2, sort_keys=False)
