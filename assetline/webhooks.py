"""Webhook operations: see, and undo, endpoints disabled after answering 410 Gone.

Both read the compacted ``<prefix>.webhooks.disabled`` topic, so they need the broker only,
not a worker. Enabling writes a tombstone for the endpoint's key; running workers follow the
topic and call the endpoint again from their next job. Records hold a digest of the URL and
its origin, never the URL itself (it may carry a token), so an endpoint is named by the URL
exactly as the jobs carry it, or by its ``url_sha256``. ``assetline webhooks`` calls these.
"""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from agents.notify.disabled import (
    DisabledEndpoints,
    DisabledEntry,
    DisabledRecordError,
    tombstone_key,
)
from schemas.errors import AssetlineError
from streams.kafka import read_to_end, topic_exists
from streams.kafka_security import client_kwargs, start_client
from streams.settings import Settings
from streams.topics import TopicNames


class DisabledTopicMissingError(AssetlineError):
    """The line has no disabled-endpoints topic yet: no worker of it has run."""

    code = "webhook.disabled_topic_missing"


async def load_disabled(settings: Settings) -> DisabledEndpoints:
    """The disabled endpoints as the topic says now; malformed records are skipped."""
    registry = DisabledEndpoints()
    topic = TopicNames.with_prefix(settings.topic_prefix).webhooks_disabled
    if not await topic_exists(settings, topic):
        raise DisabledTopicMissingError(
            f"topic {topic} does not exist: no worker of this line has run yet "
            "(create the topics with 'assetline topics')"
        )
    for record in await read_to_end(settings, topic):
        try:
            registry.apply(record.key, record.value)
        except DisabledRecordError:
            continue
    return registry


async def enable_endpoint(settings: Settings, url_or_digest: str) -> DisabledEntry | None:
    """Write the tombstone that re-enables an endpoint; None when it is not disabled."""
    entry = (await load_disabled(settings)).get(url_or_digest)
    if entry is None:
        return None
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all", enable_idempotence=True)
    await start_client(producer, settings)
    try:
        topic = TopicNames.with_prefix(settings.topic_prefix).webhooks_disabled
        await producer.send_and_wait(topic, key=tombstone_key(url_or_digest), value=None)
    finally:
        await producer.stop()
    return entry
