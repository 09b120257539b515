"""Prometheus metrics of the line, built on a registry that is passed in (tests use their own)."""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Sub-millisecond stages (routing, decoding) up to generation with 20-120 s provider calls.
STAGE_SECONDS_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
    5, 10, 20, 30, 60, 120, 180, 300,
)  # fmt: skip


class StageMetrics(NamedTuple):
    """Per-stage counters and timings; ``stage`` is the stable id of the agent."""

    events_in: Counter
    events_out: Counter
    errors: Counter
    seconds: Histogram
    in_progress: Gauge
    completions: Counter
    duplicates: Counter
    delivered_attempts: Histogram

    @classmethod
    def build(cls, registry: CollectorRegistry) -> StageMetrics:
        return cls(
            events_in=Counter(
                "assetline_stage_events_in",
                "Events a stage consumed.",
                ["stage"],
                registry=registry,
            ),
            events_out=Counter(
                "assetline_stage_events_out",
                "Events a stage produced, by output topic.",
                ["stage", "output"],
                registry=registry,
            ),
            errors=Counter(
                "assetline_stage_errors",
                "Events a stage could not process, by error code.",
                ["stage", "code"],
                registry=registry,
            ),
            seconds=Histogram(
                "assetline_stage_seconds",
                "Time a stage spent on one event.",
                ["stage"],
                buckets=STAGE_SECONDS_BUCKETS,
                registry=registry,
            ),
            in_progress=Gauge(
                "assetline_stage_in_progress",
                "Events a stage has taken and not yet seen through.",
                ["stage"],
                registry=registry,
            ),
            completions=Counter(
                "assetline_completions",
                "Completion events emitted, by status.",
                ["status"],
                registry=registry,
            ),
            duplicates=Counter(
                "assetline_duplicates_suppressed",
                "Redelivered events whose request had already completed.",
                ["stage"],
                registry=registry,
            ),
            delivered_attempts=Histogram(
                "assetline_delivered_attempts",
                "Generation attempts it took to deliver an asset (1 = first try).",
                buckets=(1, 2, 3, 4, 5, 10),
                registry=registry,
            ),
        )
