"""Topic names and the specs a worker creates: six co-partitioned topics."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from assetline.client import LineClient
from schemas.records import Priority
from streams.app import create_faust_app
from streams.settings import Settings
from streams.topics import TopicMismatchError, TopicNames, TopicSpec, line_topic_specs


def test_with_prefix_names_the_six_topics() -> None:
    names = TopicNames.with_prefix("acme-prod")
    assert names.requests == "acme-prod.requests"
    assert names.raw == "acme-prod.raw"
    assert names.approved == "acme-prod.approved"
    assert names.rejected == "acme-prod.rejected"
    assert names.completed == "acme-prod.completed"
    assert names.deadletter == "acme-prod.deadletter"


def test_all_lists_every_topic_once_in_line_order() -> None:
    names = TopicNames.with_prefix("p")
    assert names.all() == (
        "p.requests",
        "p.requests.urgent",
        "p.raw",
        "p.approved",
        "p.rejected",
        "p.completed",
        "p.deliver.deferred",
        "p.alerts",
        "p.deadletter",
        "p.spend",
        "p.spend.judge",
        "p.spend.shadow",
        "p.shadows",
        "p.review",
        "p.review.decisions",
        "p.review.items",
        "p.webhooks",
        "p.webhooks.disabled",
        "p.generations",
        "p.judgements",
    )
    assert len(set(names.all())) == 20
    assert set(names.all()) == {getattr(names, f.name) for f in dataclasses.fields(names)}


def test_high_requests_go_to_the_urgent_topic_the_rest_to_requests() -> None:
    names = TopicNames.with_prefix("p")
    assert names.requests_for(Priority.HIGH) == "p.requests.urgent"
    assert names.requests_for("HIGH") == "p.requests.urgent"
    assert names.requests_for(Priority.NORMAL) == "p.requests"
    assert names.requests_for(Priority.LOW) == "p.requests"
    assert names.request_topics() == ("p.requests", "p.requests.urgent")


def test_the_urgent_topic_is_created_like_requests() -> None:
    """Same partition count (co-partitioned: partition p of both holds the same requests, so
    the tables written while handling them land in the same partitions) and same configs."""
    specs = {s.name: s for s in line_topic_specs(settings(topic_partitions=6))}
    urgent, requests = specs["line.requests.urgent"], specs["line.requests"]
    assert (urgent.partitions, urgent.replication, urgent.config) == (
        requests.partitions,
        requests.replication,
        requests.config,
    )
    assert urgent.partitions == 6


def test_the_deferred_deliveries_topic_is_created_like_approved() -> None:
    """Same partition count as ``.approved``: a deferred record keeps its key (the request id),
    so partition p of both holds the same requests and the deliver stage's ledger partition."""
    specs = {s.name: s for s in line_topic_specs(settings(topic_partitions=6))}
    deferred, approved = specs["line.deliver.deferred"], specs["line.approved"]
    assert (deferred.partitions, deferred.replication, deferred.config) == (
        approved.partitions,
        approved.replication,
        approved.config,
    )


def test_different_prefixes_never_share_a_topic() -> None:
    a = TopicNames.with_prefix("test-1")
    b = TopicNames.with_prefix("test-2")
    assert not set(a.all()) & set(b.all())


def test_names_are_frozen() -> None:
    names = TopicNames.with_prefix("p")
    with pytest.raises(dataclasses.FrozenInstanceError):
        names.raw = "other"  # type: ignore[misc]


def settings(**overrides: object) -> Settings:
    fields: dict[str, object] = {
        "kafka_bootstrap": "127.0.0.1:1",
        "topic_prefix": "line",
        "topic_partitions": 3,
        "topic_replication": 2,
        "topic_retention_ms": 1_000,
        "deadletter_retention_ms": 9_000,
    }
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]


def test_line_topic_specs_are_every_topic_with_the_same_partitions() -> None:
    specs = line_topic_specs(settings())
    names = TopicNames.with_prefix("line")
    retries = [names.webhook_retry(tier) for tier in range(1, 7)]  # 7 delays, 6 retry topics
    assert sorted(s.name for s in specs) == sorted([*names.all(), *retries])
    assert len(specs) == len({s.name for s in specs})
    assert all(isinstance(s, TopicSpec) for s in specs)
    assert {s.partitions for s in specs} == {3}
    assert {s.replication for s in specs} == {2}


def test_deadletter_keeps_messages_longer() -> None:
    specs = {s.name: s for s in line_topic_specs(settings())}
    deadletter = specs.pop("line.deadletter")
    size = {"max.message.bytes": "1048576"}
    assert deadletter.config == {"cleanup.policy": "delete", "retention.ms": "9000", **size}
    for compacted in (
        "line.spend",
        "line.spend.judge",
        "line.spend.shadow",
        "line.review.items",
        "line.webhooks.disabled",
    ):
        assert specs.pop(compacted).config == {"cleanup.policy": "compact", **size}
    for paid in ("line.generations", "line.judgements"):
        assert specs.pop(paid).config == {
            "cleanup.policy": "compact,delete",
            "retention.ms": "86400000",  # generation_record_retention_ms, not the line's
            **size,
        }
    assert specs.pop("line.completed").config == {
        "cleanup.policy": "compact",  # the ledger's changelog (test below)
        "min.compaction.lag.ms": "1000",
        **size,
    }
    assert len(specs) == 17  # 11 line topics (.deliver.deferred too) and 6 retry topics
    for spec in specs.values():
        assert spec.config == {"cleanup.policy": "delete", "retention.ms": "1000", **size}


def test_completions_are_compacted_and_kept_whole_for_the_line_retention() -> None:
    """The ledger outlives retention: the latest completion per request is never deleted, and
    every completion stays an event for at least the line's retention before compaction."""
    (completed,) = [s for s in line_topic_specs(settings()) if s.name == "line.completed"]
    assert completed.config["cleanup.policy"] == "compact"
    assert completed.config["min.compaction.lag.ms"] == "1000"  # topic_retention_ms
    assert "retention.ms" not in completed.config
    assert completed.enforced == ("cleanup.policy",)  # an old delete topic is altered
    others = [s for s in line_topic_specs(settings()) if s.name != "line.completed"]
    assert all(s.enforced == () for s in others)


def test_every_topic_takes_exactly_what_the_producers_may_send(tmp_path: Path) -> None:
    """Topic max.message.bytes == producer max_request_size (issue 12 #2): a record too large
    must be refused by the producer at send time, never by the broker after the commit."""
    specs = line_topic_specs(settings(max_message_bytes=2_000_000))
    assert {s.config["max.message.bytes"] for s in specs} == {"2000000"}
    app = create_faust_app(settings(max_message_bytes=2_000_000, data_dir=tmp_path))
    assert app.conf.producer_max_request_size == 2_000_000

    async def client_limit() -> int:  # aiokafka needs a running loop to build a producer
        limit: int = LineClient(settings(max_message_bytes=2_000_000))._producer._max_request_size
        return limit

    assert asyncio.run(client_limit()) == 2_000_000


def test_specs_follow_the_settings() -> None:
    specs = line_topic_specs(settings(topic_prefix="other", topic_partitions=12))
    assert {s.partitions for s in specs} == {12}
    assert all(s.name.startswith("other.") for s in specs)


def test_spec_configs_are_strings() -> None:
    """The admin client sends configs as strings; an int would be refused by Kafka."""
    for spec in line_topic_specs(settings()):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in spec.config.items())


def test_configs_are_asked_again_while_a_broker_does_not_know_a_new_topic_yet() -> None:
    """On a cluster, the broker answering DescribeConfigs may not have the new topic yet."""
    from types import SimpleNamespace
    from typing import Any

    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from streams.topics import _describe_configs

    class Admin:
        def __init__(self) -> None:
            self.asked = 0

        async def describe_configs(self, resources: list[Any]) -> list[Any]:
            self.asked += 1
            if self.asked < 3:
                return [SimpleNamespace(resources=[(3, "", 2, "t.completed", [])])]
            entry: tuple[object, ...] = ("retention.ms", "1000", False, 1, False, [])
            return [SimpleNamespace(resources=[(0, "", 2, "t.completed", [entry])])]

    admin = Admin()
    resources = [ConfigResource(ConfigResourceType.TOPIC, "t.completed")]
    configs = asyncio.run(_describe_configs(admin, resources, timeout=5.0))
    assert configs == {"t.completed": {"retention.ms": ("1000", 1)}}
    assert admin.asked == 3
    with pytest.raises(TopicMismatchError, match="unknown topic"):
        asyncio.run(_describe_configs(Admin(), resources, timeout=0.1))
