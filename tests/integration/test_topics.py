"""Topic creation against the real broker: idempotent, and refusing mismatched partitions."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.settings import Settings
from streams.topics import TopicMismatchError, TopicSpec, ensure_topics, line_topic_specs

pytestmark = pytest.mark.integration


def test_creates_missing_topics_once(line_settings: Settings) -> None:
    specs = line_topic_specs(line_settings)
    created = asyncio.run(ensure_topics(line_settings.kafka_bootstrap, specs))
    assert sorted(created) == sorted(s.name for s in specs)
    assert asyncio.run(ensure_topics(line_settings.kafka_bootstrap, specs)) == []


def test_existing_topic_with_other_partition_count_is_refused(line_settings: Settings) -> None:
    specs = line_topic_specs(line_settings)
    odd = TopicSpec(specs[0].name, specs[0].partitions + 1, 1)
    asyncio.run(ensure_topics(line_settings.kafka_bootstrap, [odd]))
    with pytest.raises(TopicMismatchError, match=f"{odd.name} has {odd.partitions}"):
        asyncio.run(ensure_topics(line_settings.kafka_bootstrap, specs))


async def topic_configs(bootstrap: str, name: str) -> dict[str, str | None]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    finally:
        await admin.close()
    ((_, _, _, _, entries),) = response.resources
    return {entry[0]: entry[1] for entry in entries}


def test_existing_completed_topic_with_delete_retention_becomes_compacted(
    line_settings: Settings,
) -> None:
    """A deployment from before the durable ledger: its .completed forgets after a week, so
    the worker alters it, keeping the configs set on the topic that the line does not own."""
    bootstrap = line_settings.kafka_bootstrap
    specs = line_topic_specs(line_settings)
    (completed,) = [s for s in specs if s.name.endswith(".completed")]
    old = {"cleanup.policy": "delete", "retention.ms": "604800000", "segment.ms": "3600000"}
    asyncio.run(ensure_topics(bootstrap, [dataclasses.replace(completed, config=old)]))

    asyncio.run(ensure_topics(bootstrap, specs))
    configs = asyncio.run(topic_configs(bootstrap, completed.name))
    assert configs["cleanup.policy"] == "compact"
    assert configs["min.compaction.lag.ms"] == str(line_settings.topic_retention_ms)
    assert configs["segment.ms"] == "3600000"  # the topic's own setting survives the alter
    assert asyncio.run(ensure_topics(bootstrap, specs)) == []  # and now nothing to do


def test_a_config_the_broker_refuses_stops_the_worker_with_the_command_to_run(
    line_settings: Settings,
) -> None:
    bootstrap = line_settings.kafka_bootstrap
    (completed,) = [s for s in line_topic_specs(line_settings) if s.name.endswith(".completed")]
    asyncio.run(ensure_topics(bootstrap, [completed]))
    bogus = dataclasses.replace(completed, config={**completed.config, "cleanup.policy": "shred"})
    with pytest.raises(TopicMismatchError) as refused:
        asyncio.run(ensure_topics(bootstrap, [bogus]))
    message = str(refused.value)
    assert "\n" not in message
    assert f"{completed.name} has cleanup.policy=compact" in message
    assert f"--entity-name {completed.name} --add-config cleanup.policy=shred" in message
