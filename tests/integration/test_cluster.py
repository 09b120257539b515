"""Several hosts (issue 15 part 4): a three-node KRaft cluster from the same jars (replication
factor 3, ``min.insync.replicas=2``), three workers with separate data folders and the shared
S3 blob store. A burst of requests; mid-stream the node leading some of the line's partitions
is killed (``kill -9``), then a worker is killed and another started. From the topics: every
request has exactly one completion, none of them ``blob.missing``, no worker exited on its
own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pydantic import SecretStr

from assetline.client import LineClient
from assetline.dev.broker import LocalCluster
from schemas.attempts import generation_of
from schemas.records import AssetCompleted
from streams.app import create_faust_app
from streams.codecs import Codecs
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from tests.integration.helpers import mixed_requests
from tests.support.chaos import Traffic, Workers, follow
from tests.support.s3_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, moto_s3

pytestmark = pytest.mark.integration

BURST = 300
PARTITIONS = 6
Leaders = dict[tuple[str, int], int]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three real nodes, started together and killed when the module ends (their data is
    thrown away: a controlled shutdown of three nodes would only take longer)."""
    nodes = LocalCluster(tmp_path_factory.mktemp("kafka-cluster"), nodes=3, heap="320m")
    nodes.up(timeout=180)
    try:
        yield nodes
    finally:
        for node in nodes.brokers:
            node.kill()


async def describe(bootstrap: str, topics: list[str]) -> tuple[Leaders, dict[str, Any]]:
    """Leader per (topic, partition), and each topic's replica count and configs."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        leaders: Leaders = {}
        replicas: dict[str, set[int]] = {}
        for topic in await admin.describe_topics(topics):
            for part in topic["partitions"]:
                leaders[(topic["topic"], part["partition"])] = part["leader"]
                replicas.setdefault(topic["topic"], set()).add(len(part["replicas"]))
        resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        configs: dict[str, Any] = {}
        for response in await admin.describe_configs(resources):
            for _err, _msg, _type, name, entries in response.resources:
                values = {entry[0]: entry[1] for entry in entries}
                configs[name] = (replicas[name], values.get("min.insync.replicas"))
        return leaders, configs
    finally:
        await admin.close()


async def leaders_of(bootstrap: str, topics: list[str]) -> Leaders:
    return (await describe(bootstrap, topics))[0]


async def count_completions(
    settings: Settings,
) -> tuple[dict[str, list[AssetCompleted]], dict[str, list[str]]]:
    """Completions per request, and where each sits (partition@offset, timestamp)."""
    codecs = Codecs.load()
    names = TopicNames.with_prefix(settings.topic_prefix)
    out: dict[str, list[AssetCompleted]] = {}
    where: dict[str, list[str]] = {}
    for message in await read_to_end(settings, names.completed):
        if message.value is not None:
            done = codecs.completed.decode(message.value)
            out.setdefault(done.request_id, []).append(done)
            place = f"{message.partition}@{message.offset} ts={message.timestamp}"
            where.setdefault(done.request_id, []).append(place)
    return out, where


def test_three_brokers_lose_the_leader_and_a_worker_mid_burst(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    uid = uuid.uuid4().hex[:10]
    bucket = f"cluster-{uid}"
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every S3 call
    with moto_s3(bucket) as (endpoint, _admin):
        settings = Settings(
            kafka_bootstrap=cluster.bootstrap,
            app_id=f"cluster-{uid}",
            topic_prefix=f"cluster-{uid}",
            topic_partitions=PARTITIONS,
            topic_replication=3,
            blob_store="s3",
            blob_s3_endpoint_url=endpoint,
            blob_s3_bucket=bucket,
            blob_s3_prefix="line",
            blob_s3_access_key_id=ACCESS_KEY_ID,
            blob_s3_secret_access_key=SecretStr(SECRET_ACCESS_KEY),
            blob_s3_timeout_s=10.0,
            blob_dir=tmp_path / "blobs",  # unused with the S3 store; checked empty below
            delivery_dir=tmp_path / "delivery",
            data_dir=tmp_path / "workers",
            web_port=0,
            session_timeout_s=6.0,
            heartbeat_interval_s=0.5,
            commit_interval_s=0.5,
            log_level="info",
        )
        # Durability with RF 3: the workers' Faust producer waits for every in-sync replica
        # and is idempotent (a retry to a new leader is not written twice), as LineClient,
        # notify, replay and webhooks are.
        app = create_faust_app(settings.model_copy(update={"data_dir": tmp_path / "acks"}))
        assert app.conf.producer_acks == -1
        extra = app.producer._settings_extra()
        assert (extra["acks"], extra["enable_idempotence"]) == ("all", True)
        specs = line_topic_specs(settings)
        topics = [s.name for s in specs]
        asyncio.run(ensure_topics(settings, specs))
        before, configs = asyncio.run(describe(cluster.bootstrap, topics))
        assert {name: c for name, c in configs.items() if c != ({3}, "2")} == {}
        figures = asyncio.run(run(cluster, settings, topics, before, tmp_path))

    print(
        f"\n3-node cluster: {figures['requests']} requests, 3 workers (1 killed, 1 started); "
        f"node {figures['killed_node']} killed at t={figures['kill_at']:.1f}s leading "
        f"{figures['led']} of {len(before)} partitions; leaders moved off it "
        f"{figures['failover_s']:.1f}s after the kill ({figures['moves']} partition leader "
        f"moves seen); all completed at t={figures['completed_s']:.1f}s, "
        f"last completion {figures['after_kill_s']:.1f}s after the broker kill"
    )


async def run(
    cluster: LocalCluster, settings: Settings, topics: list[str], before: Leaders, tmp: Path
) -> dict[str, Any]:
    expected = mixed_requests(BURST, run=settings.app_id)
    ids = {e.request.request_id for e in expected}
    workers = Workers(settings, tmp / "logs")
    for slot in range(3):
        workers.start(slot)
    traffic = Traffic()
    stop = asyncio.Event()
    follower = asyncio.create_task(follow(settings, traffic, stop))
    started = time.monotonic()
    killed_node = 0
    try:
        async with LineClient(settings) as client:
            await client.submit([e.request for e in expected])
        traffic.requests.extend(e.request for e in expected)

        # Mid-stream: a quarter done. Kill -9 the node leading most of .requests' partitions.
        deadline = started + 120
        while len(traffic.done_at) < BURST // 4 and time.monotonic() < deadline:
            workers.check()
            await asyncio.sleep(0.2)
        assert len(traffic.done_at) >= BURST // 4, workers.self_exits or "too slow to start"
        requests_topic = TopicNames.with_prefix(settings.topic_prefix).requests
        leading = await leaders_of(cluster.bootstrap, topics)
        on_requests = Counter(n for (t, _), n in leading.items() if t == requests_topic)
        killed_node = on_requests.most_common(1)[0][0]
        led = sum(1 for n in leading.values() if n == killed_node)
        done_at_kill = len(traffic.done_at)
        await asyncio.to_thread(cluster.kill, killed_node)
        kill_at = time.monotonic()

        # Then kill -9 a worker and start another (its own new data folder).
        await asyncio.sleep(2.0)
        workers.kill(0)
        workers.start(3)

        # Leaders move off the dead node (the surviving two are a quorum and an ISR of 2).
        live = ",".join(b.bootstrap for i, b in enumerate(cluster.brokers) if i + 1 != killed_node)
        failover_s = -1.0
        after: Leaders = {}
        while time.monotonic() < kill_at + 60:
            with contextlib.suppress(Exception):
                after = await leaders_of(live, topics)
                if after and killed_node not in after.values():
                    failover_s = time.monotonic() - kill_at
                    break
            await asyncio.sleep(0.5)

        deadline = started + 170
        while not ids <= traffic.done_at.keys() and time.monotonic() < deadline:
            workers.check()
            await asyncio.sleep(0.5)
        await asyncio.sleep(3.0)  # late doubles would show up here
        workers.check()
    finally:
        stop.set()
        await follower
        workers.stop_all()

    logs = "\n".join(w.log_tail(100_000) for w in workers.ended)
    live_settings = settings.model_copy(update={"kafka_bootstrap": live})
    completions, where = await count_completions(live_settings)
    lost = sorted(ids - completions.keys())
    tails = "\n".join(w.log_tail(30) for w in workers.ended)
    assert not lost, f"{len(lost)} lost of {BURST}: {lost[:10]}\n{tails}"
    doubled = {
        i: [(c.attempt, c.status.value) for c in completions[i]] + where[i]
        for i in ids
        if len(completions[i]) != 1 or generation_of(completions[i][0].attempt) != 0
    }
    assert not doubled, f"{len(doubled)} with other than one completion: {doubled}"
    for e in expected:
        got = completions[e.request.request_id][0]
        assert got.status.value == e.status, (e.request.request_id, got.status, got.reasons)
    missing_blobs = [c.request_id for cs in completions.values() for c in cs
                     if any("blob.missing" in r for r in c.reasons)]  # fmt: skip
    assert missing_blobs == []
    assert "blob.missing" not in logs
    assert workers.self_exits == [], workers.self_exits
    assert failover_s >= 0, f"leaders still on node {killed_node}: {after}"
    blobs = settings.blob_dir
    assert not blobs.exists() or not any(p.is_file() for p in blobs.rglob("*"))
    moves = sum(1 for tp, node in leading.items() if after.get(tp, node) != node)
    return {
        "requests": BURST,
        "killed_node": killed_node,
        "led": led,
        "done_at_kill": done_at_kill,
        "kill_at": kill_at - started,
        "failover_s": failover_s,
        "moves": moves,
        "completed_s": max(traffic.done_at.values()) - started,
        "after_kill_s": max(traffic.done_at.values()) - kill_at,
    }
