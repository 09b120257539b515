"""Shadow versions in the generate stage: a mirrored request's copy, made by the shadow model.

An alias's ``shadow`` (routing file) mirrors a share of the alias's requests, chosen by request
id (:mod:`agents.inference.routing.versions`). After the primary's ``RawAsset`` is sent, the
generate stage asks :meth:`Shadows.mirror`, which for a mirrored request calls the shadow's
pinned model through the worker's router (``call_pinned``: cost pre-check, rate limit,
breaker, retries) with the spend booked in the shadow lane (``<prefix>.spend.shadow``, which
every budget counts), stores the bytes and sends a second ``RawAsset`` for the same request
and attempt to ``.raw``, marked ``rung: shadow`` (and the header ``assetline.shadow``).

The shadow copy never takes a request's place: validate judges it and records it on
``<prefix>.shadows`` only (no re-generation, no review, no ``.approved``/``.rejected``), so
deliver never sees it and the request keeps exactly one completion, the primary's. Nothing a
shadow does reaches the primary: it runs after the primary is sent, and :meth:`mirror` never
raises (a failure is logged and counted; the primary's crash guard never fires for it).

Finished shadow generations are recorded like the primary's (``finished.Reuse``, key
``<request_id>|shadow|<attempt>``), so a request that comes round again after a crash does not
pay the shadow twice; it may send the same shadow record again, which readers deduplicate by
(request, attempt, rung).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter

from agents.generate.finished import REUSED_HEADER, Reuse
from agents.generate.generate_one import GenerationOutcome, provider_secrets, scrub_outcome
from agents.inference.prompt import render_prompt
from agents.inference.routing.config import ChainEntry, RoutingConfig
from agents.inference.routing.plan import latency_budget
from agents.inference.routing.router import ModelRouter
from agents.inference.routing.spend import SHADOW_LANE
from agents.inference.routing.versions import SHADOW, SHADOW_HEADER, shadow_of, versioned_alias
from agents.inference.worker import book_lane, worker_inference
from schemas.records import AssetKind, GenerationError, GenerationRequest, RawAsset
from streams.blobs import BlobStore, BlobTooLargeError, BlobUnavailableError
from streams.limits import BAD_IMAGE_SIZE, AssetLimits

if TYPE_CHECKING:
    from streams.app import Line
    from streams.stage_io import StageIO

log = logging.getLogger(__name__)

#: What the generate stage calls after the primary's RawAsset is sent: (request, its bytes).
Mirror = Callable[[GenerationRequest, bytes], Awaitable[bool]]


class ShadowMetrics(NamedTuple):
    generations: Counter

    @classmethod
    def build(cls, registry: CollectorRegistry) -> ShadowMetrics:
        return cls(
            generations=Counter(
                "assetline_shadow_generations_total",
                "Shadow copies of mirrored requests, by outcome: ok, error (sent, with the "
                "provider's error), reused (recorded earlier), failed (not sent: a bug).",
                ["alias", "outcome"],
                registry=registry,
            )
        )


async def generate_shadow(
    request: GenerationRequest,
    entry: ChainEntry,
    alias: str,
    config: RoutingConfig,
    router: ModelRouter,
    blobs: BlobStore,
    limits: AssetLimits,
    clock: Callable[[], float] = time.perf_counter,
) -> GenerationOutcome:
    """The shadow model's answer to ``request`` as a ``RawAsset`` marked ``rung: shadow``.

    Like the primary's generation, failures are data: a provider error, a refused image
    size or an unwritable blob becomes the record's ``error``. Spend goes to the shadow lane.
    """
    start = clock()

    def raw(**fields: Any) -> RawAsset:
        return RawAsset(
            request=request,
            provider=entry.provider,
            model_version=entry.wire_model,
            latency_ms=(clock() - start) * 1000.0,
            alias=alias,
            rung=SHADOW,
            **fields,
        )

    def failed(code: str, message: str, retryable: bool = False, **fields: Any) -> RawAsset:
        error = GenerationError(code=code, message=message, retryable=retryable)
        return raw(error=error, **fields)

    if request.kind is AssetKind.IMAGE:
        size = request.constraints
        problem = limits.image_size_refusal(size.width, size.height)
        if problem is not None:
            return GenerationOutcome(failed(BAD_IMAGE_SIZE, problem))
    budget_ms = latency_budget(request.latency_budget_ms, config.aliases[alias].latency_budget_ms)
    result = await router.call_pinned(
        request,
        render_prompt(request),
        entry,
        latency_budget_s=budget_ms / 1000.0,
        lane=SHADOW_LANE,
    )
    spent: dict[str, Any] = {"cost": result.cost, "attempts": result.attempts}
    generated = result.generated
    if generated is None:
        error = result.error
        code, message = (error.code, error.message) if error else ("provider.error", "no answer")
        outcome = GenerationOutcome(failed(code, message, **spent), result.alerts)
    else:
        try:
            cap = limits.for_kind(request.kind)
            blob = await blobs.put_async(generated.data, generated.media_type, max_bytes=cap)
        except BlobTooLargeError as exc:
            asset = failed(exc.code, str(exc), **spent)
        except (OSError, BlobUnavailableError) as exc:
            asset = failed("blob.write_failed", str(exc), True, **spent)
        else:
            version = entry.version or generated.model_version
            asset = raw(blob=blob, **spent).model_copy(update={"model_version": version})
        outcome = GenerationOutcome(asset, result.alerts)
    return scrub_outcome(outcome, provider_secrets(router))


@dataclass
class Shadows:
    """Mirrors the requests of aliases with a shadow; one per generate stage."""

    config: RoutingConfig
    router: ModelRouter
    blobs: BlobStore
    limits: AssetLimits
    metrics: ShadowMetrics
    #: Finished generations, when the stage records them (shared with the primary's).
    reuse: Reuse | None = None

    @property
    def configured(self) -> bool:
        """Whether any alias has a shadow (else :meth:`mirror` never does anything)."""
        return any(alias.shadow is not None for alias in self.config.aliases.values())

    async def mirror(
        self,
        request: GenerationRequest,
        value: bytes,
        send_raw: Callable[[RawAsset, list[tuple[str, bytes]]], Awaitable[None]],
        send_alerts: Callable[[GenerationOutcome], Awaitable[None]],
    ) -> bool:
        """Make and send the shadow copy of ``request`` (consumed as ``value``) when it is
        mirrored; True when a copy was sent. Never raises, except on cancellation."""
        entry = shadow_of(request, self.config)
        alias = versioned_alias(request, self.config)
        if entry is None or alias is None:
            return False
        try:
            outcome, reused = await self._outcome(request, value, entry, alias)
            await send_alerts(outcome)
            headers = [(SHADOW_HEADER, b"true")]
            if reused:
                headers.append((REUSED_HEADER, b"true"))
            await send_raw(outcome.raw, headers)
        except Exception:  # a shadow must never cost its primary anything
            log.exception("shadow of %s (%s) failed", request.request_id, alias)
            self.metrics.generations.labels(alias, "failed").inc()
            return False
        label = "reused" if reused else "ok" if outcome.raw.error is None else "error"
        self.metrics.generations.labels(alias, label).inc()
        return True

    async def _outcome(
        self, request: GenerationRequest, value: bytes, entry: ChainEntry, alias: str
    ) -> tuple[GenerationOutcome, bool]:
        def generate() -> Awaitable[GenerationOutcome]:
            return generate_shadow(
                request, entry, alias, self.config, self.router, self.blobs, self.limits
            )

        if self.reuse is None:
            return await generate(), False
        # Recorded under a key of its own (<id>|shadow|<attempt>), beside the primary's.
        tagged = request.model_copy(update={"request_id": f"{request.request_id}|{SHADOW}"})
        outcome, reused = await self.reuse.outcome(tagged, value, generate)
        raw = outcome.raw.model_copy(update={"request": request})
        return GenerationOutcome(raw, list(outcome.alerts)), reused


def install_shadows(line: Line, io: StageIO, limits: AssetLimits, reuse: Reuse | None) -> Mirror:
    """The generate stage's shadows: declares the shadow spend lane's table (always, so every
    generate worker subscribes the same changelogs) and returns what the stage awaits after
    sending a primary: it sends the shadow copy (and its alerts) when the request is mirrored.
    """
    inference = worker_inference(line)
    book_lane(line, SHADOW_LANE)
    shadows = Shadows(
        inference.config,
        inference.router,
        line.blobs,
        limits,
        ShadowMetrics.build(line.registry),
        reuse,
    )
    codecs, topics = line.codecs, line.topics

    async def send_raw(raw: RawAsset, headers: list[tuple[str, bytes]]) -> None:
        output = "shadow" if raw.error is None else "shadow.error"
        value = codecs.raw.encode(raw)
        await io.send(topics.raw, raw.request.request_id, value, output, headers)

    async def send_alerts(outcome: GenerationOutcome) -> None:
        for alert in outcome.alerts:
            await io.send(topics.alerts, alert.alert_id, codecs.alert.encode(alert), "alerts")

    async def mirror(request: GenerationRequest, value: bytes) -> bool:
        return await shadows.mirror(request, value, send_raw, send_alerts)

    return mirror
