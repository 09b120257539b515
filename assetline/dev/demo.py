"""The demo campaign: personas x locales x {image, copy}, run through a real line.

The requests name the embedded ``demo`` brand profile, so the demo runs the validation gateway
too: image rules, prohibited terms, and the copy's language against its locale. ``assetline
demo`` starts a broker and a worker, calls :func:`run_demo_campaign` and prints.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path

from assetline.client import LineClient, await_completions, open_completion_reader
from assetline.dev.broker import assetline_home
from schemas.records import (
    AssetCompleted,
    AssetKind,
    CompletionStatus,
    Constraints,
    GenerationRequest,
)
from streams.settings import Settings

PERSONAS = ("trail runner", "urban gardener", "retro gamer")
LOCALES = ("en-GB", "de-DE")
IMAGE_PROMPT = "Hero banner for ${persona} (${locale}): ${product}, bold and bright"
COPY_PROMPT = "Write a short headline for ${persona} in ${locale} about ${product}"
DEMO_PROFILE_ID = "demo"

#: Written to the demo's run folder when no ASSETLINE_PROFILES_DIR is set.
DEMO_PROFILE = """\
id: demo
name: Aurora demo brand
max_attempts: 2   # one repair attempt for repairable failures
review: false     # the demo has no reviewer: what cannot be repaired is rejected
image:
  formats: [png]
  min_width: 256
  min_height: 256
  max_bytes: 2000000
  transparency: forbid
text:
  prohibited: [guaranteed, risk-free, miracle, cure, "100% free"]
  max_chars: 280
"""


def demo_requests(
    run_id: str,
    *,
    personas: Sequence[str] = PERSONAS,
    locales: Sequence[str] = LOCALES,
    tenant: str = "acme",
    campaign_id: str = "spring-launch",
    product: str = "the Aurora water bottle",
) -> list[GenerationRequest]:
    """One IMAGE and one TEXT request per persona and locale, with stable ids per run."""
    requests = []
    for persona in personas:
        for locale in locales:
            variables = {"persona": persona, "locale": locale, "product": product}
            for kind in (AssetKind.IMAGE, AssetKind.TEXT):
                intent = f"{campaign_id}|{persona}|{locale}|{kind.value}"
                key = hashlib.sha256(intent.encode()).hexdigest()[:16]
                image = kind is AssetKind.IMAGE
                requests.append(
                    GenerationRequest(
                        request_id=f"{run_id}-{key}",
                        idempotency_key=key,
                        tenant=tenant,
                        campaign_id=campaign_id,
                        kind=kind,
                        prompt_template=IMAGE_PROMPT if image else COPY_PROMPT,
                        variables=variables,
                        constraints=(
                            Constraints(width=512, height=512, format="png")
                            if image
                            else Constraints(max_chars=280, language=locale)
                        ),
                        brand_profile_id=DEMO_PROFILE_ID,
                        metadata={"persona": persona, "locale": locale},
                    )
                )
    return requests


def summary_table(
    requests: Iterable[GenerationRequest],
    completions: dict[str, list[AssetCompleted]],
    in_review: Collection[str] = (),
) -> str:
    """A plain-text table: request, kind, status, attempt, delivered path (or why not), latency.

    A request without a completion that waits for a person (``in_review``) is IN_REVIEW: held,
    not lost; any other is MISSING.
    """
    rows = [("request", "kind", "status", "attempt", "delivered file", "latency ms")]
    for request in requests:
        done = completions.get(request.request_id)
        if not done:
            held = request.request_id in in_review
            status, where = ("IN_REVIEW", "waiting for a person") if held else ("MISSING", "-")
            rows.append((request.request_id, request.kind.value, status, "-", where, "-"))
            continue
        last = done[-1]
        where = last.location.removeprefix("file://") if last.location else "; ".join(last.reasons)
        latency = f"{last.timings_ms.get('total', 0.0):.0f}"
        rows.append(
            (
                request.request_id,
                request.kind.value,
                last.status.value,
                str(last.attempt),
                where,
                latency,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


#: aiokafka loggers that report a partition whose leader is still being elected, retried
#: (and then fine) a moment after the demo created its topics.
ELECTION_LOGGERS = ("aiokafka.consumer.fetcher", "aiokafka.producer.sender", "aiokafka.conn")


class _LeaderElectionNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "NotLeaderForPartition" not in record.getMessage()


@contextlib.contextmanager
def quiet_leader_elections() -> Iterator[None]:
    """Drop aiokafka's NotLeaderForPartitionError lines while fresh topics elect leaders.

    The client retries them by itself; printed, they looked like the demo failing. Every
    other aiokafka message still gets through.
    """
    noise = _LeaderElectionNoise()
    loggers = [logging.getLogger(name) for name in ELECTION_LOGGERS]
    for logger in loggers:
        logger.addFilter(noise)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(noise)


def uses_external_broker(bootstrap: str | None) -> bool:
    """Whether the demo runs on a Kafka it was given (flag or environment), not its own."""
    return bool(
        bootstrap
        or os.environ.get("KAFKA_BOOTSTRAP")
        or os.environ.get("ASSETLINE_KAFKA_BOOTSTRAP")
    )


def demo_run_dir() -> Path:
    """Where the demo keeps its brand profile and worker log."""
    return assetline_home() / "var" / "demo"


def write_demo_profiles(run_dir: Path) -> Path:
    """A profiles folder holding only the demo's own brand profile.

    Always this one, whatever ``ASSETLINE_PROFILES_DIR`` says: the user's folder does not
    have the ``demo`` profile the requests name, and then the demo delivered nothing.
    """
    profiles = run_dir / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / f"{DEMO_PROFILE_ID}.yaml").write_text(DEMO_PROFILE, encoding="utf-8")
    return profiles


async def run_demo_campaign(
    settings: Settings,
    requests: list[GenerationRequest],
    timeout: float,
    *,
    on_submitted: Callable[[int], None],
    on_completion: Callable[[AssetCompleted], None],
) -> dict[str, list[AssetCompleted]]:
    """Submit ``requests`` and wait up to ``timeout`` seconds for their completions.

    The completion reader opens before the first request is sent, so no completion can
    slip past it.
    """
    reader = await open_completion_reader(settings)
    try:
        async with LineClient(settings) as client:
            await client.submit(requests)
        on_submitted(len(requests))
        return await await_completions(
            settings,
            [r.request_id for r in requests],
            timeout=timeout,
            consumer=reader,
            on_completion=on_completion,
        )
    finally:
        await reader.stop()


def delivered_count(completions: dict[str, list[AssetCompleted]]) -> int:
    """How many requests ended DELIVERED (their latest completion)."""
    return sum(1 for done in completions.values() if done[-1].status is CompletionStatus.DELIVERED)
