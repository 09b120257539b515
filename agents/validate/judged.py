"""The AI judge's verdicts, recorded before they are used, so a copy of a raw event never pays
the judge again.

The validate stage sees a raw asset again whenever its offset was not committed yet: after a
crash or a rebalance, and on the consumer's own refetches (:mod:`streams.safe_consumer`).
Measured in CI: a validate worker that joined its group beside a generate worker judged the
first request twice, and the campaign's judge spend read $0.80 for one $0.40 verdict. So each
verdict is recorded in the ``judgements`` table (changelog ``<prefix>.judgements``,
co-partitioned with ``.raw``) and acknowledged before the validated asset is emitted; a copy
with the same raw asset and the same judge policy gets the recorded verdict, its cost and its
calls, with no new call and no new spend booked (:mod:`agents.inference.paid_once`).

Records are keyed per (request, attempt, rung), so a shadow's verdict never replaces its
primary's; the digest covers the raw asset and the judge policy, so a changed rubric or a
replayed asset is judged anew.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from agents.inference.paid_once import OnceMetrics, PaidOnce, RecordStore
from agents.policy.rules import JudgePolicy
from agents.validate.judge import JudgeOutcome
from schemas.records import Alert, CheckResult, ProviderAttempt, RawAsset

__all__ = ["JudgeRecords", "judgement_digest", "judgement_key", "judgement_metrics"]


def judgement_key(raw: RawAsset) -> bytes:
    """One record per (request, attempt, rung): a re-generation's verdict is its own."""
    request = raw.request
    return f"{request.request_id}|{request.attempt}|{raw.rung or ''}".encode()


def judgement_digest(raw: RawAsset, policy: JudgePolicy) -> str:
    """SHA-256 of what the verdict depends on: the raw asset and the judge's policy."""
    digest = hashlib.sha256(raw.model_dump_json().encode())
    digest.update(b"\0")
    digest.update(policy.model_dump_json().encode())
    return digest.hexdigest()


def judgement_metrics(registry: CollectorRegistry) -> OnceMetrics:
    # Literal names: the dashboard test finds the metrics the code exposes by reading it.
    return OnceMetrics(
        reused=Counter(
            "assetline_judgements_reused",
            "Judge verdicts reused from a record: no new judge call.",
            registry=registry,
        ),
        ignored=Counter(
            "assetline_judgement_records_ignored",
            "Verdict records found but not reused (unreadable, different_request).",
            ["reason"],
            registry=registry,
        ),
        record_failed=Counter(
            "assetline_judgement_records_failed",
            "Judge verdicts used without a durable record (the broker refused it).",
            registry=registry,
        ),
        evicted=Counter(
            "assetline_judgement_records_evicted",
            "Verdict records dropped from the worker's memory after the retention period.",
            registry=registry,
        ),
    )


def _fields(outcome: JudgeOutcome) -> dict[str, Any]:
    return {
        "result": outcome.result.model_dump(mode="json"),
        "attempts": [attempt.model_dump(mode="json") for attempt in outcome.attempts],
        "alerts": [alert.model_dump(mode="json") for alert in outcome.alerts],
    }


def _rebuilt(body: dict[str, Any]) -> JudgeOutcome:
    return JudgeOutcome(
        CheckResult.model_validate(body["result"]),
        tuple(ProviderAttempt.model_validate(attempt) for attempt in body["attempts"]),
        tuple(Alert.model_validate(alert) for alert in body.get("alerts", [])),
    )


@dataclass
class JudgeRecords:
    """Ask the judge once per raw asset and policy; copies get the recorded verdict."""

    store: RecordStore
    metrics: OnceMetrics
    clock: Callable[[], float] = time.time
    _once: PaidOnce[JudgeOutcome] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._once = PaidOnce(self.store, self.metrics, _fields, clock=self.clock)

    async def verdict(
        self,
        raw: RawAsset,
        policy: JudgePolicy,
        judge: Callable[[], Awaitable[JudgeOutcome]],
    ) -> tuple[JudgeOutcome, bool]:
        """The recorded verdict on ``raw`` under ``policy``, or ``judge()``'s, recorded and
        acknowledged first; True when reused."""
        request = raw.request
        return await self._once.outcome(
            judgement_key(raw),
            judgement_digest(raw, policy),
            judge,
            decode=_rebuilt,
            who=f"{request.request_id} attempt {request.attempt} (judge)",
        )
