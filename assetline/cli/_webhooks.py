"""``assetline webhooks disabled|enable``: see, and undo, endpoints disabled by a 410 Gone.

Both read the compacted ``<prefix>.webhooks.disabled`` topic, so they need the broker only,
not a worker. ``enable`` writes a tombstone for the endpoint's key; running workers follow the
topic and call the endpoint again from their next job. Records hold a digest of the URL and
its origin, never the URL itself (it may carry a token), so ``enable`` takes the URL exactly as
the jobs carry it, or the ``url_sha256`` that ``disabled`` prints.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from assetline.cli._common import load_settings, run
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames

if TYPE_CHECKING:
    from agents.notify.disabled import DisabledEndpoints, DisabledEntry


async def _topic_exists(bootstrap: str, topic: str) -> bool:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return topic in await consumer.topics()
    finally:
        await consumer.stop()


async def load_disabled(settings: Settings) -> DisabledEndpoints:
    """The disabled endpoints as the topic says now; malformed records are skipped."""
    # Imported here: streams reaches agents only at wiring time (see streams.app).
    from agents.notify.disabled import DisabledEndpoints, DisabledRecordError

    registry = DisabledEndpoints()
    topic = TopicNames.with_prefix(settings.topic_prefix).webhooks_disabled
    if not await _topic_exists(settings.kafka_bootstrap, topic):
        raise click.ClickException(
            f"topic {topic} does not exist: no worker of this line has run yet "
            "(create the topics with 'assetline topics')"
        )
    for record in await read_to_end(settings.kafka_bootstrap, topic):
        try:
            registry.apply(record.key, record.value)
        except DisabledRecordError:
            continue
    return registry


async def enable_endpoint(settings: Settings, url_or_digest: str) -> DisabledEntry | None:
    """Write the tombstone that re-enables an endpoint; None when it is not disabled."""
    from agents.notify.disabled import tombstone_key

    entry = (await load_disabled(settings)).get(url_or_digest)
    if entry is None:
        return None
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        topic = TopicNames.with_prefix(settings.topic_prefix).webhooks_disabled
        await producer.send_and_wait(topic, key=tombstone_key(url_or_digest), value=None)
    finally:
        await producer.stop()
    return entry


@click.group("webhooks")
def webhooks_group() -> None:
    """Completion webhooks: endpoints disabled after answering 410 Gone."""


@webhooks_group.command("disabled")
def list_disabled() -> None:
    """Print disabled endpoints as JSON lines, oldest first."""
    from agents.notify.disabled import entry_json

    settings = load_settings()
    registry = run(load_disabled(settings), settings)
    for entry in registry.entries():
        click.echo(json.dumps(entry_json(entry)))
    click.echo(f"{len(registry)} disabled", err=True)


@webhooks_group.command("enable")
@click.argument("url_or_sha256")
def enable(url_or_sha256: str) -> None:
    """Call URL_OR_SHA256 again: the exact webhook URL, or its url_sha256 from 'disabled'."""
    from agents.notify.disabled import entry_json

    settings = load_settings()
    entry = run(enable_endpoint(settings, url_or_sha256), settings)
    if entry is None:
        raise click.ClickException(
            "no disabled endpoint with that URL or digest; see 'assetline webhooks disabled'"
        )
    click.echo(json.dumps({"enabled": entry_json(entry)}))
