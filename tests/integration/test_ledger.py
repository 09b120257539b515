"""The deliver ledger outlives topic retention and worker restarts (issue 14, part 4).

Before the durable ledger, ``.completed`` had delete retention: once retention dropped a
completion, a redelivered event completed its request again. Now ``.completed`` is compacted,
so the broker refuses to drop it, a worker with no local state still finds the completion, and
a worker restarted on its data dir finds it on disk.

(Retention itself is not waited for: a line topic with a one-second retention loses its unread
events too, and the broker checks retention every five minutes.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import PolicyViolationError
from aiokafka.structs import TopicPartition

from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetCompleted, Disposition
from streams.codecs import Codecs
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from tests.support.assets import failed, make_request, make_validated

pytestmark = pytest.mark.integration

CODECS = Codecs.load()


def rejected_event(request_id: str) -> bytes:
    """A final rejection: deliver completes it REJECTED, no sink involved."""
    request = make_request(request_id=request_id, idempotency_key=request_id)
    validated = make_validated([failed("copy.tone", repairable=False)], request=request)
    return CODECS.validated.encode(
        validated.model_copy(update={"disposition": Disposition.REJECTED})
    )


async def send_rejected(settings: Settings, *request_ids: str) -> None:
    topic = TopicNames.with_prefix(settings.topic_prefix).rejected
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for rid in request_ids:  # one partition: deliver sees them in this order
            await producer.send_and_wait(topic, key=rid.encode(), value=rejected_event(rid))
    finally:
        await producer.stop()


async def cleanup_policy(settings: Settings) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        name = TopicNames.with_prefix(settings.topic_prefix).completed
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    finally:
        await admin.close()
    ((_, _, _, _, entries),) = response.resources
    return str({entry[0]: entry[1] for entry in entries}["cleanup.policy"])


async def drop_completions(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        name = TopicNames.with_prefix(settings.topic_prefix).completed
        await admin.delete_records({TopicPartition(name, 0): RecordsToDelete(-1)})
    finally:
        await admin.close()


def completions(settings: Settings, *request_ids: str) -> dict[str, list[AssetCompleted]]:
    return asyncio.run(await_completions(settings, request_ids, timeout=90))


def test_a_completion_older_than_retention_is_still_known_after_restarts(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
) -> None:
    settings = line_settings.model_copy(update={"stages": ("deliver",), "topic_partitions": 1})
    assert settings.ledger_store == "rocksdb"
    asyncio.run(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)))
    assert asyncio.run(cleanup_policy(settings)) == "compact"  # retention never deletes it
    run = uuid.uuid4().hex[:8]
    old, probe1, probe2 = f"old-{run}", f"probe1-{run}", f"probe2-{run}"

    first = start_worker(settings)
    asyncio.run(send_rejected(settings, old))
    assert len(completions(settings, old).get(old, [])) == 1, first.log_tail(50)
    first.stop()
    # Retention's deletion, without waiting a week: what the broker's retention pass does to a
    # delete topic is drop the records before some offset. The old .completed let it (and the
    # cold start below then completed the request again); a compacted topic refuses.
    with pytest.raises(PolicyViolationError):
        asyncio.run(drop_completions(settings))

    # A new worker with no local state: its ledger is only what .completed still holds.
    cold = settings.model_copy(update={"data_dir": tmp_path / "cold-worker"})
    second = start_worker(cold)
    asyncio.run(send_rejected(cold, old, probe1))  # the old request redelivered, then a new one
    got = completions(cold, old, probe1)
    assert len(got.get(probe1, [])) == 1, second.log_tail(50)
    assert len(got[old]) == 1, "the redelivered event completed its request again"
    second.stop()
    ledger_files = list((tmp_path / "cold-worker").rglob("*completions*"))
    assert ledger_files, "the ledger is on disk under the worker's data dir"

    # The same worker restarted on its data dir keeps the ledger.
    third = start_worker(cold)
    asyncio.run(send_rejected(cold, old, probe2))
    got = completions(cold, old, probe1, probe2)
    assert len(got.get(probe2, [])) == 1, third.log_tail(50)
    assert {rid: len(events) for rid, events in got.items()} == {old: 1, probe1: 1, probe2: 1}
