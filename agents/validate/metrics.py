"""Prometheus metrics of the validation gateway."""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agents.inference.routing.metrics import CALL_SECONDS_BUCKETS
from agents.validate.deadline import CheckRunner
from schemas.records import ProviderAttempt, ValidatedAsset


class GatewayMetrics(NamedTuple):
    checks: Counter
    dispositions: Counter
    judge_calls: Counter
    judge_seconds: Histogram
    judge_cost: Counter

    @classmethod
    def build(cls, registry: CollectorRegistry) -> GatewayMetrics:
        return cls(
            checks=Counter(
                "assetline_checks",
                "Validation checks run, by code and outcome (passed, failed).",
                ["code", "outcome"],
                registry=registry,
            ),
            dispositions=Counter(
                "assetline_validation_dispositions",
                "Validated assets by campaign and where they went (APPROVED, REGENERATE, "
                "REVIEW, REJECTED); the approval rate is APPROVED over the sum.",
                ["campaign", "disposition"],
                registry=registry,
            ),
            judge_calls=Counter(
                "assetline_judge_calls",
                "AI validator calls, by provider, model and result code "
                "(judge.verdict = it answered).",
                ["provider", "model", "code"],
                registry=registry,
            ),
            judge_seconds=Histogram(
                "assetline_judge_call_seconds",
                "Wall time of one AI validator call.",
                ["provider", "model"],
                buckets=CALL_SECONDS_BUCKETS,
                registry=registry,
            ),
            judge_cost=Counter(
                "assetline_judge_cost_usd",
                "Spend on AI validator calls, in USD.",
                ["provider", "model"],
                registry=registry,
            ),
        )

    def observe(self, validated: ValidatedAsset) -> None:
        report = validated.report
        judge_code = next((c.code for c in report.checks if c.code.startswith("judge.")), None)
        for check in report.checks:
            self.checks.labels(check.code, "passed" if check.passed else "failed").inc()
        campaign = validated.raw.request.campaign_id
        if validated.disposition is not None:
            self.dispositions.labels(campaign, validated.disposition.value).inc()
        for attempt in report.attempts:
            self._judge(attempt, judge_code)

    def _judge(self, attempt: ProviderAttempt, judge_code: str | None) -> None:
        labels = (attempt.provider, attempt.model)
        self.judge_calls.labels(*labels, judge_code or "judge.verdict").inc()
        self.judge_seconds.labels(*labels).observe(attempt.latency_ms / 1000.0)
        self.judge_cost.labels(*labels).inc(attempt.cost)


def overdue_checks_gauge(registry: CollectorRegistry, runner: CheckRunner) -> Gauge:
    """Checks still running past their deadline: threads Python cannot stop, worth an alert."""
    gauge = Gauge(
        "assetline_checks_overdue",
        "Validation checks still running on their thread after their deadline passed.",
        registry=registry,
    )
    gauge.set_function(lambda: runner.stuck)
    return gauge
