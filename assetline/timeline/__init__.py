"""Request timelines and campaign progress, from an index kept by following the line's topics.

Every record of the line's topics (requests, raw, approved, rejected, review, review
decisions and items, completed, dead letters, alerts, webhooks and their retry tiers,
generations, shadows) is decoded once into :class:`TimelineEntry` values and kept per request
in a bounded in-memory :class:`RequestIndex`; a query never re-reads Kafka.

API (all in this package; nothing here imports a stage)::

    entry_from(topic: TopicKind, key: bytes | None, value: bytes | None, headers,
               timestamp: int, *, codecs: Codecs) -> tuple[TimelineEntry, ...]
        pure: one record -> its entries (a delivered completion gives `delivered`, then
        `completed`)

    index = RequestIndex(codecs, max_requests=100_000, only=None)
    index.apply(topic, key, value, headers, timestamp) -> tuple[TimelineEntry, ...]
    index.timeline(request_id) -> list[TimelineEntry]        # time order
    index.state(request_id) -> RequestState | None           # status, in_review, cost, ...
    index.campaigns() -> list[str]; index.campaign_states(campaign_id) -> list[RequestState]

    follower = IndexFollower(settings, index, refresh_s=5.0, on_entries=None)
        # on_entries(entries): called on the loop for each record's new entries (live pages)
    await follower.start(); await follower.wait_caught_up(timeout) -> bool; await follower.stop()
    await read_once(settings, RequestIndex(codecs, only={rid}), timeout=60) -> bool

    campaign_progress(index, campaign_id, now_ms=None, window_s=60, expected=None)
        -> CampaignProgress   # by_status (+ IN_REVIEW, DEAD_LETTER, IN_FLIGHT),
                              # waiting_in_review, failed_by_reason, cost, rate_per_s, eta_s
    all_progress(index) -> list[CampaignProgress]

    timeline_text(request_id, entries) -> str; timeline_json(request_id, entries, state) -> dict
    progress_text(progress) -> str

A console keeps one ``RequestIndex`` and one ``IndexFollower`` for its lifetime on its event
loop (the index is not thread-safe) and reads them from its handlers. ``assetline status``
reads the topics once with ``only={request_id}``.
"""

from assetline.timeline.entry import (
    EventKind,
    TimelineEntry,
    TopicKind,
    entry_from,
    reason_code,
    topic_kinds,
    trace_id_of,
)
from assetline.timeline.follow import IndexFollower, line_topic_kinds, read_once
from assetline.timeline.index import DEFAULT_MAX_REQUESTS, RequestIndex, RequestState
from assetline.timeline.progress import (
    CampaignProgress,
    all_progress,
    bucket_of,
    campaign_progress,
    progress_of,
)
from assetline.timeline.render import iso_ms, progress_text, timeline_json, timeline_text

__all__ = [
    "DEFAULT_MAX_REQUESTS",
    "CampaignProgress",
    "EventKind",
    "IndexFollower",
    "RequestIndex",
    "RequestState",
    "TimelineEntry",
    "TopicKind",
    "all_progress",
    "bucket_of",
    "campaign_progress",
    "entry_from",
    "iso_ms",
    "line_topic_kinds",
    "progress_of",
    "progress_text",
    "read_once",
    "reason_code",
    "timeline_json",
    "timeline_text",
    "topic_kinds",
    "trace_id_of",
]
