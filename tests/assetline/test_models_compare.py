"""``models compare``: the pure aggregation of an alias's rungs, its table and ``--since``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from assetline.cli import cli
from assetline.models_compare import (
    CompareError,
    compare,
    parse_since,
    percentile,
    render_table,
)
from schemas.records import (
    AssetCompleted,
    AssetKind,
    BlobRef,
    CheckResult,
    CompletionStatus,
    Disposition,
    GenerationError,
    GenerationRequest,
    ModelSpec,
    RawAsset,
    ReviewAction,
    ReviewDecision,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)

BLOB = BlobRef(uri="file:///x", sha256="0" * 64, size=1, media_type="text/plain")
MODELS = {"primary": "main-1", "canary": "next-2", "shadow": "shade-3"}


def raw(
    request_id: str,
    rung: str | None,
    *,
    attempt: int = 1,
    latency: float = 10.0,
    cost: float = 0.01,
    alias: str = "copy",
    failed: bool = False,
) -> RawAsset:
    request = GenerationRequest(
        request_id=request_id,
        idempotency_key=request_id,
        tenant="t",
        campaign_id="c",
        kind=AssetKind.TEXT,
        prompt_template="p",
        model=ModelSpec(alias=alias),
        attempt=attempt,
    )
    outcome = (
        {"error": GenerationError(code="provider.unavailable", message="down")}
        if failed
        else {"blob": BLOB}
    )
    return RawAsset(
        request=request,
        provider="offline",
        model_version=MODELS[rung or "primary"],
        latency_ms=latency,
        cost=cost,
        alias=alias,
        rung=rung,
        **outcome,
    )


def validated(
    asset: RawAsset,
    verdict: Verdict,
    disposition: Disposition,
    *,
    judge_cost: float = 0.0,
    reviewed: bool = False,
) -> ValidatedAsset:
    check = CheckResult(code="text.prohibited", passed=verdict is Verdict.PASS, message="m")
    review = (
        ReviewDecision(decision_id="d", request_id="x", action=ReviewAction.APPROVE, reviewer="p")
        if reviewed
        else None
    )
    return ValidatedAsset(
        raw=asset,
        report=ValidationReport(verdict=verdict, checks=[check], cost=judge_cost),
        disposition=disposition,
        review=review,
    )


def completed(asset: RawAsset, status: CompletionStatus) -> AssetCompleted:
    request = asset.request
    return AssetCompleted(
        request_id=request.request_id,
        idempotency_key=request.idempotency_key,
        tenant="t",
        campaign_id="c",
        kind=AssetKind.TEXT,
        attempt=request.attempt,
        status=status,
        alias=asset.alias,
        rung=asset.rung,
    )


PASS = (Verdict.PASS, Disposition.APPROVED)
REDO = (Verdict.FAIL, Disposition.REGENERATE)


def line() -> tuple[list[RawAsset], list[ValidatedAsset], list[AssetCompleted]]:
    """Four primary requests (one re-generated once), two canaries (one rejected), three
    shadows (one would be re-generated), plus noise: another alias, a redelivered record, a
    reviewer's later decision."""
    raws, checks, done = [], [], []
    for n, latency in enumerate((10.0, 20.0, 30.0, 40.0)):
        first = raw(f"p{n}", "primary", latency=latency)
        raws.append(first)
        if n == 0:
            checks.append(validated(first, *REDO))
            again = raw("p0", "primary", attempt=2, latency=50.0)
            raws.append(again)
            checks.append(validated(again, *PASS, judge_cost=0.005))
            done.append(completed(again, CompletionStatus.DELIVERED))
        else:
            checks.append(validated(first, *PASS))
            done.append(completed(first, CompletionStatus.DELIVERED))
    ok, bad = raw("c0", "canary", latency=5.0, cost=0.02), raw("c1", "canary", cost=0.02)
    raws += [ok, bad]
    checks += [validated(ok, *PASS), validated(bad, Verdict.FAIL, Disposition.REJECTED)]
    done += [completed(ok, CompletionStatus.DELIVERED), completed(bad, CompletionStatus.REJECTED)]
    for n in range(3):
        shadow = raw(f"p{n}", "shadow", latency=100.0 * (n + 1), cost=0.1)
        raws.append(shadow)
        checks.append(validated(shadow, *(REDO if n == 2 else PASS)))
    failed_shadow = raw("p3", "shadow", cost=0.0, failed=True)
    raws.append(failed_shadow)
    checks.append(validated(failed_shadow, Verdict.ERROR, Disposition.REJECTED))
    # noise
    raws.append(raw("p1", "primary", latency=10.0))  # redelivered: same (id, attempt, rung)
    checks.append(validated(raws[2], *PASS, reviewed=True))  # a reviewer's decision
    other = raw("o0", None, alias="other")
    raws.append(other)
    checks.append(validated(other, *PASS))
    done.append(completed(other, CompletionStatus.DELIVERED))
    return raws, checks, done


def rows() -> dict[str, dict[str, object]]:
    comparison = compare("copy", *line())
    return {stats.rung: stats.as_dict() for stats in comparison.rungs}


def test_each_rung_is_counted_on_its_own() -> None:
    by = rows()
    assert list(by) == ["primary", "canary", "shadow"]
    primary, canary, shadow = by["primary"], by["canary"], by["shadow"]
    assert (primary["requests"], primary["generations"], primary["validated"]) == (4, 5, 5)
    assert primary["approval_rate"] == 0.8  # 4 of 5 validations passed
    assert (primary["regenerated"], primary["regeneration_rate"]) == (1, 0.25)
    assert primary["model"] == "offline/main-1"
    assert (canary["requests"], canary["approval_rate"], canary["regeneration_rate"]) == (2, 0.5, 0)
    assert canary["model"] == "offline/next-2"
    assert (shadow["requests"], shadow["validated"], shadow["approved"]) == (4, 4, 2)
    assert shadow["approval_rate"] == 0.5
    assert shadow["regeneration_rate"] == 0.25  # would have been: p2
    assert shadow["model"] == "offline/shade-3"


def test_latency_percentiles_are_of_the_rungs_generations() -> None:
    by = rows()
    assert by["primary"]["latency_ms"] == {"p50": 30.0, "p95": 50.0}  # 10 20 30 40 50
    assert by["canary"]["latency_ms"] == {"p50": 5.0, "p95": 10.0}
    # the failed shadow has no latency worth comparing: 100 200 300
    assert by["shadow"]["latency_ms"] == {"p50": 200.0, "p95": 300.0}


def test_cost_is_spread_over_delivered_assets_and_for_shadows_over_approved_copies() -> None:
    by = rows()
    # 5 generations x 0.01 + one judge call 0.005, over 4 delivered
    assert by["primary"]["cost_usd"] == pytest.approx(0.055)
    assert (by["primary"]["assets"], by["primary"]["per"]) == (4, "delivered")
    assert by["primary"]["cost_per_asset_usd"] == pytest.approx(0.01375)
    assert by["canary"]["cost_per_asset_usd"] == pytest.approx(0.04)  # 0.04 over 1 delivered
    assert (by["shadow"]["assets"], by["shadow"]["per"]) == (2, "approved")
    assert by["shadow"]["cost_per_asset_usd"] == pytest.approx(0.15)  # 0.3 over 2 approved


def test_records_without_a_rung_are_primary_and_empty_rungs_are_left_out() -> None:
    raws, checks, done = line()
    comparison = compare("other", raws, checks, done)
    [only] = comparison.rungs
    assert only.rung == "primary"
    assert only.as_dict()["requests"] == 1
    assert compare("nobody", raws, checks, done).rungs == ()


def test_the_latest_completion_of_a_request_counts() -> None:
    asset = raw("x", "canary")
    later = raw("x", "canary", attempt=2)
    done = [completed(later, CompletionStatus.DELIVERED), completed(asset, CompletionStatus.FAILED)]
    [canary] = compare("copy", [asset, later], [], done).rungs
    assert canary.delivered == 1


def test_the_table_has_a_row_per_rung() -> None:
    text = render_table(compare("copy", *line(), since=datetime(2026, 12, 3, tzinfo=UTC)))
    head, columns, *body = text.splitlines()
    assert head == "alias copy, since 2026-12-03T00:00:00+00:00"
    assert columns.split()[:3] == ["rung", "model", "requests"]
    assert [row.split()[0] for row in body] == ["primary", "canary", "shadow"]
    assert "80.0%" in body[0]
    assert body[2].endswith("2 approved")
    assert (
        render_table(compare("nobody", [], [], [])) == "alias nobody, since the start: no records"
    )


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95)) == (50.0, 95.0)


def test_since_takes_a_duration_or_an_iso_time() -> None:
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert parse_since("90s", now) == now - timedelta(seconds=90)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("2026-12-01T00:00:00Z") == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_since("2026-12-01T00:00") == datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(CompareError, match="yesterday"):
        parse_since("yesterday")


def test_a_bad_since_is_a_usage_error_before_any_broker_is_asked() -> None:
    result = CliRunner().invoke(cli, ["models", "compare", "--alias", "a", "--since", "soon"])
    assert result.exit_code == 2
    assert "--since" in result.output
