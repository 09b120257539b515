"""Following a campaign on the line: its completions, and which of the rest wait in review.

Reads ``.completed`` from the beginning with a group-less reader (so a re-run sees the
completions of the first run) and the review table; ``assetline campaign`` calls these and
prints the progress.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka.errors import KafkaError

from assetline.campaign.expand import Campaign
from assetline.campaign.progress import CampaignSummary
from assetline.client import open_completion_reader
from assetline.review import waiting_for_review
from schemas.records import GenerationRequest
from streams.codecs import CodecError, Codecs
from streams.kafka import Batch, batches_to_end
from streams.settings import Settings

log = logging.getLogger(__name__)


async def follow_completions(
    settings: Settings,
    summary: CampaignSummary,
    codecs: Codecs,
    deadline: float,
    on_progress: Callable[[], None] | None = None,
) -> None:
    """Read ``.completed`` from the beginning until every id completed or the deadline passed.

    The history up to now is always read to its end, even past the deadline (a
    ``time.monotonic()`` value), so an id is only called missing when it truly has no
    completion (e.g. on a re-run of a campaign). A deadline already passed therefore reads
    just that history. ``on_progress`` is called after every poll (about twice a second).
    """
    consumer = await open_completion_reader(settings)
    try:
        if not summary.complete:
            async for batch in batches_to_end(consumer, timeout_ms=500):
                _add(summary, codecs, batch)
                if on_progress is not None:
                    on_progress()
                if summary.complete:
                    break
        while not summary.complete and time.monotonic() < deadline:
            _add(summary, codecs, await consumer.getmany(timeout_ms=500))
            if on_progress is not None:
                on_progress()
    finally:
        await consumer.stop()


def _add(summary: CampaignSummary, codecs: Codecs, batch: Batch) -> None:
    """The campaign's completions of one poll; others' are skipped undecoded."""
    for messages in batch.values():
        for message in messages:
            key = message.key.decode("utf-8", "replace") if message.key else None
            if key is not None and not summary.wants(key):
                continue  # someone else's completion: skip decoding it
            try:
                summary.add(codecs.completed.decode(message.value))
            except CodecError:
                continue


async def without_completion(
    settings: Settings, plan: Campaign, summary: CampaignSummary, codecs: Codecs
) -> list[GenerationRequest]:
    """The plan's requests that have no completion yet (the history is read into ``summary``).

    For a re-run after a partial failure: only these cost a generation.
    """
    await follow_completions(settings, summary, codecs, time.monotonic())
    return [r for r in plan.requests if r.request_id not in summary.latest]


async def mark_waiting_in_review(
    settings: Settings, summary: CampaignSummary, codecs: Codecs
) -> None:
    """Record which ids without a completion wait for a person: held, not lost."""
    summary.mark_in_review(await waiting_for_review(settings, summary.request_ids, codecs))


async def keep_marking_in_review(
    settings: Settings, summary: CampaignSummary, codecs: Codecs, every: float = 5.0
) -> None:
    """:func:`mark_waiting_in_review` every ``every`` seconds until cancelled, so the live
    status line shows the ids held for a person while the campaign is followed."""
    while True:
        await asyncio.sleep(every)
        if summary.complete:
            continue
        try:
            await mark_waiting_in_review(settings, summary, codecs)
        except (KafkaError, OSError) as exc:  # the line's status only; the next round retries
            log.warning("campaign: could not read the review table: %s", exc)
