"""Prometheus metrics of the batch rungs, per provider and model.

A batched call's wait (minutes to a day) is not a provider call's latency, so it is observed
here (``assetline_batch_wait_seconds``) and never in ``assetline_provider_call_seconds``; its
cost, tokens and outcome are counted with every other call's by the router.
"""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: A batched call's wait: a fast batch ends in a minute, the window is 24 h.
WAIT_SECONDS_BUCKETS = (10, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 57600, 86400, 172800)


class BatchMetrics(NamedTuple):
    batches: Counter
    calls: Counter
    waiting: Gauge
    wait_seconds: Histogram
    late_cost: Counter
    resumed: Counter

    @classmethod
    def build(cls, registry: CollectorRegistry) -> BatchMetrics:
        return cls(
            batches=Counter(
                "assetline_batch_submitted",
                "Batches submitted to a provider's batch API.",
                ["provider", "model"],
                registry=registry,
            ),
            calls=Counter(
                "assetline_batch_calls",
                "Batched calls by outcome: ok, or the code that sent them to the chain.",
                ["provider", "model", "outcome"],
                registry=registry,
            ),
            waiting=Gauge(
                "assetline_batch_waiting",
                "Calls waiting for a batch (gathered or submitted) in this worker.",
                ["provider", "model"],
                registry=registry,
            ),
            wait_seconds=Histogram(
                "assetline_batch_wait_seconds",
                "From a call joining a batch to its answer (or to giving up on it).",
                ["provider", "model"],
                buckets=WAIT_SECONDS_BUCKETS,
                registry=registry,
            ),
            late_cost=Counter(
                "assetline_batch_late_cost_usd",
                "What the batch price says answers cost that came after their caller had "
                "given up (billed by the provider; booked late into the request's budgets).",
                ["provider", "model"],
                registry=registry,
            ),
            resumed=Counter(
                "assetline_batch_resumed_calls",
                "Batched calls followed in the batch a previous owner of their request "
                "submitted (after a crash or a rebalance), instead of being submitted again.",
                ["provider", "model"],
                registry=registry,
            ),
        )
