"""Prometheus metrics of the inference layer, per provider and model."""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Provider calls: cache hits in milliseconds up to image/video generation of several minutes.
CALL_SECONDS_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 180, 300)

#: Gauge values of ``assetline_provider_breaker_state``.
BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}


class ProviderMetrics(NamedTuple):
    requests: Counter
    errors: Counter
    seconds: Histogram
    tokens: Counter
    images: Counter
    cost: Counter
    breaker_state: Gauge
    budget_kills: Counter
    fallbacks: Counter
    rate_limit: Gauge
    group_members: Gauge
    in_flight_limit: Gauge

    @classmethod
    def build(cls, registry: CollectorRegistry) -> ProviderMetrics:
        return cls(
            requests=Counter(
                "assetline_provider_requests",
                "Calls to a provider, by outcome (ok, error, refused).",
                ["provider", "model", "outcome"],
                registry=registry,
            ),
            errors=Counter(
                "assetline_provider_errors",
                "Failed or skipped provider calls, by error code.",
                ["provider", "model", "code"],
                registry=registry,
            ),
            seconds=Histogram(
                "assetline_provider_call_seconds",
                "Wall time of one provider call.",
                ["provider", "model"],
                buckets=CALL_SECONDS_BUCKETS,
                registry=registry,
            ),
            tokens=Counter(
                "assetline_provider_tokens",
                "Tokens billed, by direction (input, output).",
                ["provider", "model", "direction"],
                registry=registry,
            ),
            images=Counter(
                "assetline_provider_images",
                "Images billed.",
                ["provider", "model"],
                registry=registry,
            ),
            cost=Counter(
                "assetline_provider_cost_usd",
                "Spend in USD, every attempt included.",
                ["provider", "model"],
                registry=registry,
            ),
            breaker_state=Gauge(
                "assetline_provider_breaker_state",
                "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
                ["provider"],
                registry=registry,
            ),
            budget_kills=Counter(
                "assetline_budget_kills",
                "Requests stopped by a budget, by kind (latency, cost, deadline).",
                ["alias", "kind"],
                registry=registry,
            ),
            fallbacks=Counter(
                "assetline_fallbacks",
                "Requests served by an alias's fallback asset.",
                ["alias"],
                registry=registry,
            ),
            rate_limit=Gauge(
                "assetline_provider_rate_limit_per_second",
                "This worker's share of a provider's rate limit (the limit / live workers).",
                ["provider"],
                registry=registry,
            ),
            group_members=Gauge(
                "assetline_group_members",
                "Live workers of the consumer group at the last rebalance (rate limits are "
                "split between them).",
                registry=registry,
            ),
            in_flight_limit=Gauge(
                "assetline_provider_in_flight_limit",
                "Calls this worker lets be in flight to a provider at once (learned from its "
                "answers: grows while they are fast, halves on 429s and timeouts).",
                ["provider"],
                registry=registry,
            ),
        )
