"""The Faust app factory: ``create_line(settings, stages)`` builds the app and installs stages.

No module-level ``app``: everything a stage needs travels in the :class:`Line` it is given, so
tests build as many isolated lines as they like. The runtime knows no stage: the caller (the
composition root, :mod:`assetline.worker`) passes the installers of the stages to run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.transport.drivers.aiokafka import Producer as AIOKafkaDriverProducer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from schemas.records import Priority
from streams.blob_sweep import install_blob_sweeper
from streams.blobs import BlobStore, open_blob_store
from streams.bulk_restore import LineTableManager
from streams.codecs import Codecs
from streams.health import install_health
from streams.kafka_security import faust_credentials
from streams.metrics import StageMetrics
from streams.pooled_stage import take_events_in_batches
from streams.registry import codecs_for_settings
from streams.safe_consumer import SafeTransport
from streams.settings import Settings
from streams.stage_pool import StagePool
from streams.topics import TopicNames


@dataclass(frozen=True)
class LineTopics:
    """Faust topic objects; values and keys are raw bytes, decoded by our codecs in the stage."""

    names: TopicNames
    requests: Any
    requests_urgent: Any
    raw: Any
    approved: Any
    rejected: Any
    completed: Any
    deliver_deferred: Any
    deadletter: Any
    alerts: Any
    spend: Any
    spend_judge: Any
    spend_shadow: Any
    shadows: Any
    review: Any
    review_decisions: Any
    review_items: Any
    webhooks: Any
    generations: Any
    judgements: Any

    def requests_for(self, priority: Priority | str) -> Any:
        """The topic a request of ``priority`` is written to (TopicNames.requests_for)."""
        urgent = self.names.requests_for(priority) == self.names.requests_urgent
        return self.requests_urgent if urgent else self.requests


@dataclass(frozen=True)
class Line:
    """What every stage gets: settings, the app, topics, codecs, blob store and metrics."""

    settings: Settings
    app: faust.App
    topics: LineTopics
    codecs: Codecs
    blobs: BlobStore
    registry: CollectorRegistry
    metrics: StageMetrics
    #: Each pooled stage's pool (streams/stage_pool.py): its waiting jobs count as queue depth.
    pools: dict[str, StagePool] = field(default_factory=dict)


#: What a stage offers the runtime: subscribe its agents (and tables, pages) on the line.
StageInstaller = Callable[[Line], None]


class IdempotentProducer(AIOKafkaDriverProducer):
    """Faust's aiokafka producer with ``acks=all`` and idempotence, outside transactions too.

    Faust asks for idempotence only in a transaction (exactly_once); the line runs at least
    once. Without it, a batch whose leader died after writing it but before answering is
    retried to the new leader and written twice - the likely cause of two identical
    completions of one request seen on a three-broker cluster whose leader was killed
    (tests/integration/test_cluster.py, one run in four). With it the broker drops the
    retried copy by its sequence number.
    """

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class LineApp(faust.App):
    """Faust's app with a consumer that cannot commit past unprocessed events, and an
    idempotent producer."""

    def _new_transport(self) -> Any:
        return SafeTransport(self.conf.broker_consumer, self)

    def _new_producer(self) -> Any:
        return IdempotentProducer(self.transport, loop=self.loop, beacon=self.beacon)

    async def maybe_start_producer(self) -> Any:
        """The producer, without three trips round the event loop once it runs.

        Faust asks this for every record it sends; its version is a stampede guard that
        sleeps(0) before and twice after the check even when the producer long runs. Table
        writes (generation records, spend books, the deliver ledger) wait in Faust's producer
        buffer, drained one record at a time through this call, and above 100 records Faust's
        conductor stops handing fetched events to *every* stream until it ebbs. With 256
        provider calls in flight each loop pass takes milliseconds, so the buffer drained at
        a few hundred records a second, stayed above 100 ("producer buffer full" warnings)
        and throttled the stages' intake to their output: HIGH requests behind 10,000 NORMAL
        were only fetched ~70 s later (bench.providers priority, issue 16).
        """
        producer = self.producer
        if not self.in_transaction and producer.started:
            return producer
        return await super().maybe_start_producer()


def create_faust_app(settings: Settings) -> faust.App:
    """Faust configured for Kafka 4.x: no self-declared topics, no leader topic."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    return LineApp(
        settings.app_id,
        broker=[f"kafka://{hostport}" for hostport in settings.kafka_bootstrap.split(",")],
        # TLS/SASL for every client Faust builds (streams/kafka_security.py)
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=str(settings.data_dir),
        topic_allow_declare=False,
        topic_disable_leader=True,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_commit_interval=settings.commit_interval_s,
        stream_buffer_maxsize=settings.stream_buffer_maxsize,
        stream_recovery_delay=0.0,
        producer_linger=settings.producer_linger_ms / 1000.0,
        # Equal to the topics' max.message.bytes: a record too large is refused by send()
        # itself, where the stage sees it, never later by the broker after the commit.
        producer_max_request_size=settings.max_message_bytes,
        # One produce request per broker is in flight at a time (aiokafka), and a send into a
        # full per-partition batch waits for that request: with Faust's 16 KiB batches the
        # table changelog writes (generation records, spend books) queued one batch per round
        # trip behind each other and stalled every stage (issue 16). Batches as large as the
        # largest record the line writes fill a round trip instead.
        producer_max_batch_size=settings.max_message_bytes,
        table_standby_replicas=0,
        # Tables on an acked RocksDB store (the ledger) with empty local state are loaded in
        # bulk before Faust's recovery reads their changelog (streams.bulk_restore).
        TableManager=LineTableManager,
        web_enabled=settings.web_port != 0,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port or None,
        web_in_thread=False,
    )


def create_line(
    settings: Settings,
    stages: Sequence[StageInstaller],
    *,
    registry: CollectorRegistry | None = None,
) -> Line:
    """Build the app and install ``stages`` on it, in order."""
    app = create_faust_app(settings)
    take_events_in_batches()  # a busy worker's streams take backlogs into their pools
    names = TopicNames.with_prefix(settings.topic_prefix)

    def topic(name: str, *, acks: bool = True) -> Any:
        return app.topic(
            name,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.topic_partitions,
            acks=acks,
        )

    topics = LineTopics(
        names=names,
        requests=topic(names.requests),
        # HIGH requests' intake (TopicNames.requests_for), read by generate's second agent.
        requests_urgent=topic(names.requests_urgent),
        raw=topic(names.raw),
        approved=topic(names.approved),
        rejected=topic(names.rejected),
        # No agent consumes .completed; it is the ledger table's changelog. Without acks Faust's
        # stall monitor does not expect a stream to drain it.
        completed=topic(names.completed, acks=False),
        # Deliveries put off for a destination with its bound waiting (agents/deliver/deferral.py).
        deliver_deferred=topic(names.deliver_deferred),
        deadletter=topic(names.deadletter),
        alerts=topic(names.alerts),
        spend=topic(names.spend, acks=False),  # the spend table's changelog, like .completed
        spend_judge=topic(names.spend_judge, acks=False),  # the judge's lane of spend
        spend_shadow=topic(names.spend_shadow, acks=False),  # shadow versions' lane of spend
        # Shadow versions' validated copies (agents/validate/shadow.py); deliver never reads it.
        shadows=topic(names.shadows),
        review=topic(names.review),
        review_decisions=topic(names.review_decisions),
        review_items=topic(names.review_items, acks=False),  # the review table's changelog
        webhooks=topic(names.webhooks),
        # The finished-generations table's changelog (agents/generate/finished.py).
        generations=topic(names.generations, acks=False),
        # The AI judge's recorded verdicts (agents/validate/judged.py).
        judgements=topic(names.judgements, acks=False),
    )
    registry = registry if registry is not None else CollectorRegistry()
    line = Line(
        settings=settings,
        app=app,
        topics=topics,
        codecs=codecs_for_settings(settings),
        blobs=open_blob_store(settings),  # local or S3 (streams/blobs.py)
        registry=registry,
        metrics=StageMetrics.build(registry),
    )
    for install in stages:
        install(line)
    # blob retention (streams/blob_sweep.py)
    install_blob_sweeper(line.app, registry, settings, line.codecs, line.blobs)
    _install_metrics_page(line)
    # /healthz, /readyz, consumer lag and queue depth (streams/health.py)
    install_health(line.app, registry, settings, probe_topic=names.requests, pools=line.pools)
    return line


def _install_metrics_page(line: Line) -> None:
    registry = line.registry

    # aiohttp refuses a charset inside content_type, so it is dropped from Prometheus' value.
    content_type = CONTENT_TYPE_LATEST.split("; charset")[0]

    @line.app.page("/metrics")
    async def metrics(view: Any, request: Any) -> Any:
        return view.bytes(generate_latest(registry), content_type=content_type)
