"""Turn one request into one raw asset; every failure becomes data on the raw asset."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agents.inference.providers.base import Generated
from agents.inference.routing.fallback import FallbackAssets
from agents.inference.routing.router import ModelRouter, RouteResult
from agents.inference.routing.versions import rung_of
from schemas.records import (
    Alert,
    AssetKind,
    CheckResult,
    Disposition,
    GenerationError,
    GenerationRequest,
    RawAsset,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from streams.blobs import BlobStore, BlobTooLargeError, BlobUnavailableError
from streams.limits import BAD_IMAGE_SIZE, AssetLimits
from streams.redaction import redact
from streams.stage_io import STAGE_CRASHED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationOutcome:
    raw: RawAsset
    alerts: list[Alert] = field(default_factory=list)


async def generate_asset(
    request: GenerationRequest,
    router: ModelRouter,
    fallbacks: FallbackAssets,
    blobs: BlobStore,
    clock: Callable[[], float] = time.perf_counter,
    limits: AssetLimits | None = None,
) -> GenerationOutcome:
    """:func:`_generate`, then a last scrub of every configured secret from what it says.

    Adapters redact at the source; this pass makes sure an exception text or an adapter bug
    cannot be the one place a key reaches the raw record, its completion or an alert.
    """
    outcome = await _generate(request, router, fallbacks, blobs, clock, limits)
    rung = rung_of(request, router.config)  # primary or canary, when the alias has versions
    if rung is not None:
        outcome = GenerationOutcome(outcome.raw.model_copy(update={"rung": rung}), outcome.alerts)
    return scrub_outcome(outcome, provider_secrets(router))


async def _generate(
    request: GenerationRequest,
    router: ModelRouter,
    fallbacks: FallbackAssets,
    blobs: BlobStore,
    clock: Callable[[], float],
    limits: AssetLimits | None,
) -> GenerationOutcome:
    """Never raises for a bad request or failing providers: the error travels as a RawAsset.

    An asset over its kind's cap (``limits``) is not stored: the error is ``asset.too_large``.
    """
    cap = (limits or AssetLimits()).for_kind(request.kind)
    start = clock()
    if request.kind is AssetKind.IMAGE:  # before any provider: they forward sizes as given
        constraints = request.constraints
        problem = (limits or AssetLimits()).image_size_refusal(
            constraints.width, constraints.height
        )
        if problem is not None:
            error = GenerationError(code=BAD_IMAGE_SIZE, message=problem, retryable=False)
            return GenerationOutcome(_errored(request, None, error, start, clock))
    result: RouteResult | None = None
    try:
        result = await router.route(request)
        generated, fallback = result.generated, False
        if generated is None and result.fallback_allowed and result.alias is not None:
            spec = router.config.aliases[result.alias].fallback
            if spec is not None:
                generated, fallback = await fallbacks.render(result.alias, spec, request), True
        if generated is None:
            return GenerationOutcome(_failed(request, result, start, clock), result.alerts)
        blob = await blobs.put_async(generated.data, generated.media_type, max_bytes=cap)
    except BlobTooLargeError as exc:
        error = GenerationError(code=exc.code, message=str(exc), retryable=False)
        return GenerationOutcome(_errored(request, result, error, start, clock), _alerts(result))
    except (OSError, BlobUnavailableError) as exc:
        log.exception("writing blob for %s failed", request.request_id)
        error = GenerationError(code="blob.write_failed", message=str(exc), retryable=True)
        return GenerationOutcome(_errored(request, result, error, start, clock), _alerts(result))
    except Exception as exc:  # a routing bug must not stop the line
        log.exception("generation crashed on %s", request.request_id)
        message = f"{type(exc).__name__}: {exc}"
        error = GenerationError(code="provider.crashed", message=message, retryable=True)
        return GenerationOutcome(_errored(request, result, error, start, clock), _alerts(result))
    raw = RawAsset(
        request=request,
        blob=blob,
        provider=_served_provider(result, generated),
        model_version=_served_version(result, generated),
        latency_ms=(clock() - start) * 1000.0,
        cost=result.cost,
        alias=result.alias,
        attempts=result.attempts,
        fallback=fallback,
    )
    return GenerationOutcome(raw, result.alerts)


def refused(request: GenerationRequest, code: str, message: str) -> RawAsset:
    """A request the line will not serve (say, a profile its tenant may not use): no call made.

    It travels as an error so the request still ends in exactly one FAILED completion.
    """
    error = GenerationError(code=code, message=message, retryable=False)
    return RawAsset(
        request=request,
        error=error,
        provider=request.model.provider or "",
        model_version=request.model.version or "",
        latency_ms=0.0,
        alias=request.model.alias,
    )


def crashed(request: GenerationRequest, message: str, *, cost: float = 0.0) -> ValidatedAsset:
    """The final record of a request whose generate step crashed: ERROR, disposition REJECTED.

    It goes straight to ``.rejected``, so the deliver stage ends the request in one FAILED
    completion with reason ``stage.crashed`` (webhooks included) while the event waits on the
    dead-letter topic for a person. Built from the decoded request only, never from what the
    providers returned: that may be what could not be encoded. ``cost`` is what was spent.
    """
    raw = refused(request, STAGE_CRASHED, message).model_copy(update={"cost": cost})
    check = CheckResult(code=STAGE_CRASHED, passed=False, message=message)
    report = ValidationReport(verdict=Verdict.ERROR, checks=[check])
    return ValidatedAsset(raw=raw, report=report, disposition=Disposition.REJECTED)


def provider_secrets(router: ModelRouter) -> tuple[str, ...]:
    """The keys and header values of the router's HTTP adapters (offline ones have none)."""
    return tuple(
        secret
        for provider in router.providers.values()
        for secret in getattr(provider, "secrets", ())
    )


def scrub_outcome(outcome: GenerationOutcome, secrets: Sequence[str]) -> GenerationOutcome:
    """``outcome`` with every form of every secret masked in its messages and alerts."""
    if not secrets:
        return outcome
    raw = outcome.raw
    error = raw.error
    if error is not None:
        error = error.model_copy(update={"message": redact(error.message, secrets)})
    attempts = [
        attempt.model_copy(update={"message": redact(attempt.message, secrets)})
        if attempt.message
        else attempt
        for attempt in raw.attempts
    ]
    alerts = [
        alert.model_copy(
            update={
                "message": redact(alert.message, secrets),
                "details": {key: redact(value, secrets) for key, value in alert.details.items()},
            }
        )
        for alert in outcome.alerts
    ]
    return GenerationOutcome(raw.model_copy(update={"error": error, "attempts": attempts}), alerts)


def _served_provider(result: RouteResult, generated: Generated) -> str:
    entry = result.served_by
    return entry.provider if entry is not None else generated.provider


def _served_version(result: RouteResult, generated: Generated) -> str:
    """The pinned version that was sent, else what the provider says served it."""
    entry = result.served_by
    if entry is not None and entry.version:
        return entry.version
    return generated.model_version


def _alerts(result: RouteResult | None) -> list[Alert]:
    return result.alerts if result is not None else []


def _failed(
    request: GenerationRequest, result: RouteResult, start: float, clock: Callable[[], float]
) -> RawAsset:
    error = result.error
    assert error is not None, "a route result without an asset carries its error"
    failure = GenerationError(code=error.code, message=error.message, retryable=error.retryable)
    return _errored(request, result, failure, start, clock)


def _errored(
    request: GenerationRequest,
    result: RouteResult | None,
    error: GenerationError,
    start: float,
    clock: Callable[[], float],
) -> RawAsset:
    provider = (result.last_provider if result else "") or request.model.provider or ""
    version = (result.last_model if result else "") or request.model.version or ""
    return RawAsset(
        request=request,
        error=error,
        provider=provider,
        model_version=version,
        latency_ms=(clock() - start) * 1000.0,
        cost=result.cost if result else 0.0,
        alias=result.alias if result else request.model.alias,
        attempts=result.attempts if result else [],
    )
