"""The validation gateway: a request's policy, its check suite, and the AI judge, together.

One per worker. It resolves the brand profile of each asset, runs that policy's checks (built
once per policy and reused), then asks the judge when the policy has one. Everything that goes
wrong is a result in the report; nothing here raises for a bad asset or a bad judge.
"""

from __future__ import annotations

import inspect
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from agents.inference.providers.base import Provider
from agents.inference.routing.router import ModelRouter, standalone_router
from agents.policy import DEFAULT_POLICY, Policy, PolicyError, ProfileBook
from agents.policy.rules import JudgePolicy
from agents.validate.checks import Check, Subject, default_checks
from agents.validate.checks.image import DEFAULT_MAX_PIXELS, ImageProber
from agents.validate.checks.image_policy import image_policy_checks
from agents.validate.checks.palette import BrandPalette
from agents.validate.checks.sentiment import sentiment_checks
from agents.validate.checks.terms import LanguageDetector, text_policy_checks
from agents.validate.deadline import CheckRunner
from agents.validate.judge import JudgeOutcome, applies, run_judge
from agents.validate.judged import JudgeRecords
from agents.validate.settle_sentiment import settle_sentiment
from agents.validate.suite import verdict
from agents.validate.triage import Triage, triage
from agents.validate.validate_one import unreadable, validate_off_loop
from schemas.errors import AssetlineError
from schemas.records import Alert, BlobRef, RawAsset, ValidatedAsset, Verdict
from streams.blobs import BlobError, BlobTooLargeError
from streams.limits import AssetLimits

#: Reads a blob's bytes: the blob store's ``get_async`` (or ``get``, or a test's lambda).
Fetch = Callable[[BlobRef], bytes] | Callable[[BlobRef], Awaitable[bytes]]

#: Undrained judge alerts kept by a gateway (the validate stage drains them after each asset).
MAX_PENDING_ALERTS = 1_000


class JudgeConfigError(AssetlineError, ValueError):
    """A profile's judge names a provider the routing file does not define."""

    code = "config.judge"


def build_checks(
    policy: Policy, prober: ImageProber, detector: LanguageDetector | None
) -> tuple[Check, ...]:
    """The request-constraint checks every asset gets, then the policy's own.

    All image checks share ``prober``, so each image is decoded once per suite.
    """
    animation = policy.image is not None and policy.image.allow_animation
    base = default_checks(prober.max_pixels, prober=prober, allow_animation=animation)
    extra: list[Check] = []
    if policy.image is not None:
        extra.extend(image_policy_checks(policy.image, prober))
    if policy.palette is not None:
        extra.append(BrandPalette(policy.palette, prober))
    if policy.text is not None:
        extra.extend(text_policy_checks(policy.text, detector))
    # Every copy is scored, so delivery can stamp the score; only a profile minimum fails it.
    extra.extend(sentiment_checks(policy))
    return (*base, *extra)


class Gateway:
    """Judges raw assets under their brand's policy.

    ``judges`` is the worker's model router, shared with generation, so judge calls get its
    retries, breakers, rate limits and budgets; ready adapters (tools, tests) get a router of
    their own without budgets.
    """

    def __init__(
        self,
        book: ProfileBook,
        judges: ModelRouter | Mapping[str, Provider] | None,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        detector: LanguageDetector | None = None,
        clock: Callable[[], float] = time.perf_counter,
        runner: CheckRunner | None = None,
        limits: AssetLimits | None = None,
        judgements: JudgeRecords | None = None,
    ) -> None:
        router = standalone_router(judges) if isinstance(judges, Mapping) and judges else judges
        self.router: ModelRouter | None = router if isinstance(router, ModelRouter) else None
        providers = self.router.providers if self.router is not None else {}
        for policy in book.policies.values():
            if policy.judge is not None and policy.judge.provider not in providers:
                raise JudgeConfigError(
                    f"profile {policy.label!r}: judge provider {policy.judge.provider!r} is not "
                    f"in the routing file (known: {', '.join(sorted(providers)) or 'none'})"
                )
        self.book = book
        #: The judge's alerts (breaker opened, budget refused), for the stage to publish; a
        #: tool that never drains them keeps only the latest.
        self.alerts: deque[Alert] = deque(maxlen=MAX_PENDING_ALERTS)
        # One prober for every policy's checks: it holds the last decoded image, so one per
        # policy would keep one image per campaign in memory.
        self.prober = ImageProber(max_pixels)
        self.detector = detector
        self.clock = clock
        # Checks run on threads under a deadline, so a slow one never stalls the loop.
        self.runner = runner if runner is not None else CheckRunner()
        self._checks: dict[str, tuple[Check, ...]] = {}
        self.limits = limits or AssetLimits()
        #: Recorded verdicts (the validate stage's table), so a copy of an event that comes
        #: round again is not judged, and paid for, twice; None asks the judge every time.
        self.judgements = judgements
        for policy in book.policies.values():
            # At start-up, not on the loop at the first asset: term regexes, the confusables
            # table and the English word list behind text.prohibited take ~0.5 s to build.
            self.checks_for(policy)

    def checks_for(self, policy: Policy) -> tuple[Check, ...]:
        checks = self._checks.get(policy.label)
        if checks is None:
            checks = build_checks(policy, self.prober, self.detector)
            self._checks[policy.label] = checks
        return checks

    def policy_for(self, raw: RawAsset) -> Policy | PolicyError:
        request = raw.request
        return self.book.resolve(request.brand_profile_id, request.campaign_id)

    async def inspect(self, raw: RawAsset, data: bytes | None, policy: Policy) -> ValidatedAsset:
        """Checks first; the judge only when the policy has one and it applies.

        By default (``when: if_passed``) the judge is asked only about assets that passed every
        rule, because a paid model call on an asset that is already rejected buys nothing.
        """
        started = self.clock()
        validated = await validate_off_loop(
            raw, data, self.checks_for(policy), self.runner.run_suite, clock=self.clock
        )
        report = validated.report.model_copy(update={"profile": policy.label})
        judge = policy.judge
        wanted = judge is not None and (judge.when == "always" or report.verdict is Verdict.PASS)
        if (
            judge is not None
            and wanted
            and report.verdict is not Verdict.ERROR
            and raw.blob is not None
            and data is not None
            and applies(judge, raw.request.kind)
        ):
            subject = Subject(request=raw.request, data=data, media_type=raw.blob.media_type)
            outcome = await self._judged(raw, subject, judge)
            self.alerts.extend(outcome.alerts)
            checks = [*report.checks, outcome.result]
            report = report.model_copy(
                update={
                    "checks": checks,
                    "verdict": verdict(checks),
                    "cost": report.cost + outcome.cost,
                    "attempts": [*report.attempts, *outcome.attempts],
                }
            )
        report = settle_sentiment(report, policy)  # the judge's sentiment, when it was asked
        report = report.model_copy(update={"duration_ms": (self.clock() - started) * 1000.0})
        return validated.model_copy(update={"report": report})

    async def _judged(self, raw: RawAsset, subject: Subject, judge: JudgePolicy) -> JudgeOutcome:
        """The judge's verdict on ``raw``: recorded once, reused by every copy."""
        assert self.router is not None  # checked against every policy's judge at start
        router = self.router

        def ask() -> Awaitable[JudgeOutcome]:
            return run_judge(subject, judge, router)

        if self.judgements is None:
            return await ask()
        outcome, _reused = await self.judgements.verdict(raw, judge, ask)
        return outcome

    def drain_alerts(self) -> list[Alert]:
        """The judge's alerts since the last call, for the stage to publish."""
        alerts = list(self.alerts)
        self.alerts.clear()
        return alerts

    async def assess(self, raw: RawAsset, fetch: Fetch) -> tuple[ValidatedAsset, Triage]:
        """Everything the validate stage decides about one raw asset, and where it goes next.

        ``fetch`` reads the blob's bytes, or is a coroutine function that does (the blob store's
        ``get_async``); a :class:`BlobError` is a result, like any failure.
        An unknown profile or unreadable bytes give verdict ERROR, which triage makes final.
        """
        policy = self.policy_for(raw)
        if isinstance(policy, PolicyError):
            validated = unreadable(raw, policy.code, policy.message)
            policy = DEFAULT_POLICY
        else:
            try:
                data = await self._read(raw, fetch)
            except BlobError as exc:
                validated = unreadable(raw, exc.code, str(exc))
            else:
                validated = await self.inspect(raw, data, policy)
        decision = triage(validated, policy)
        return validated.model_copy(update={"disposition": decision.disposition}), decision

    async def _read(self, raw: RawAsset, fetch: Fetch) -> bytes | None:
        """The blob's bytes, or BlobTooLargeError (``asset.too_large``) over the kind's cap.

        Checked by the recorded size before reading and by the real size after, so an asset
        too large is never parsed (a 900 MB JSON document took 16 s of the event loop).
        """
        if raw.blob is None:
            return None
        kind = raw.request.kind
        refusal = self.limits.refusal(kind, raw.blob.size)
        if refusal is None:
            fetched = fetch(raw.blob)
            data = await fetched if inspect.isawaitable(fetched) else fetched
            refusal = self.limits.refusal(kind, len(data))
            if refusal is None:
                return data
        raise BlobTooLargeError(refusal)
