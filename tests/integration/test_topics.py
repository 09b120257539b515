"""Topic creation against the real broker: idempotent, and refusing mismatched partitions."""

from __future__ import annotations

import asyncio

import pytest

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
