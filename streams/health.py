"""Health of a worker for an orchestrator: ``/healthz``, ``/readyz`` and the runtime gauges.

``/healthz`` answers 200 whenever the worker's event loop does (it looks at nothing else, so
a broker outage never gets a live worker restarted). ``/readyz`` answers 200 only when a
Kafka broker answered the last background check, the worker has joined its group and its
rebalance (table recovery included) is done; a member with no partitions after a completed
rebalance (more workers than partitions) is ready too. Otherwise 503 with a JSON reason:
``{"ready": false, "reason": "broker unreachable", ...}``.

The broker check runs in the background (:class:`BrokerProbe`, every
``health_check_interval_s``, each check bounded by ``health_check_timeout_s``): a handler
only reads its cached result, so a probe never waits on Kafka. Faust's own ``/`` answers OK
with the broker down and is not a health check.

Gauges computed when ``/metrics`` is scraped (:class:`RuntimeCollector`), from the Faust
consumer's own bookkeeping: ``assetline_consumer_lag{topic,partition}`` (the partition's
high watermark minus the committed offset), ``assetline_stage_queue_depth{stage}`` (events
fetched and buffered for a stage's agent, not yet taken), ``assetline_broker_reachable`` and
``assetline_ready``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import faust
from mode import Service
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.kafka_security import kafka_secrets
from streams.redaction import redact

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from streams.settings import Settings

log = logging.getLogger(__name__)

#: A check result older than this many check periods means the checker itself is stuck.
STALE_PERIODS = 3.0


@dataclass
class BrokerStatus:
    """The last broker check: ``reachable`` is None until the first check has ended."""

    reachable: bool | None = None
    #: Monotonic time the last check ended, and the time ``reachable`` last changed.
    checked_at: float | None = None
    changed_at: float | None = None
    error: str = ""
    latency_s: float | None = None


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"ready": self.ready, "reason": self.reason, **self.details}


def readiness(
    broker: BrokerStatus,
    *,
    now: float,
    stale_after_s: float,
    joined: bool,
    rebalancing: bool,
    in_recovery: bool,
    partitions: int,
) -> Readiness:
    """Whether a worker is ready, and if not the first reason, in this order: the broker
    (never checked, check stale, unreachable), the group (not joined yet), the rebalance
    (table recovery, partition assignment)."""
    if broker.reachable is None or broker.checked_at is None:
        return Readiness(False, "broker not checked yet")
    age = now - broker.checked_at
    if age > stale_after_s:
        return Readiness(False, "broker check stale", {"check_age_s": round(age, 1)})
    if not broker.reachable:
        details: dict[str, Any] = {"error": broker.error}
        if broker.changed_at is not None:
            details["for_s"] = round(now - broker.changed_at, 1)
        return Readiness(False, "broker unreachable", details)
    if not joined:
        return Readiness(False, "not joined the consumer group yet")
    if in_recovery:
        return Readiness(False, "table recovery in progress")
    if rebalancing:
        return Readiness(False, "rebalancing")
    return Readiness(True, "ok", {"partitions": partitions, "idle": partitions == 0})


#: One broker check: returns when a broker answered, raises (or times out) otherwise.
Ask = Callable[[], Coroutine[Any, Any, None]]


class BrokerProbe:
    """Keeps :attr:`status` current: one bounded check every ``interval_s``."""

    def __init__(
        self,
        ask: Ask,
        *,
        interval_s: float,
        timeout_s: float,
        secrets: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ask = ask
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.status = BrokerStatus()
        self._secrets = list(secrets)
        self._clock = clock

    @property
    def stale_after_s(self) -> float:
        return STALE_PERIODS * (self.interval_s + self.timeout_s)

    async def check(self) -> BrokerStatus:
        """One check, at most ``timeout_s`` long; never raises (but for cancellation)."""
        start = self._clock()
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.ask()
        except TimeoutError:
            self._record(False, f"no broker answered within {self.timeout_s:g}s", start)
        except Exception as exc:
            name = type(exc).__name__
            text = " ".join(str(exc).split())
            text = text if text.startswith(name) else f"{name}: {text}".rstrip(": ")
            self._record(False, redact(text, self._secrets), start)
        else:
            self._record(True, "", start)
        return self.status

    def _record(self, reachable: bool, error: str, start: float) -> None:
        now = self._clock()
        status = self.status
        if status.reachable is not reachable:
            if reachable:
                log.info("health: Kafka answers again")
            elif status.reachable is not None:
                log.warning("health: Kafka unreachable: %s", error)
            status.changed_at = now
        status.reachable = reachable
        status.error = error
        status.checked_at = now
        status.latency_s = now - start if reachable else None

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval_s)


class KafkaAsk:
    """A broker check over one long-lived client with the line's security: a metadata
    request for one topic to a known broker, or a fresh bootstrap when none answers."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self._client: Any = None

    async def __call__(self) -> None:
        from aiokafka.client import AIOKafkaClient
        from aiokafka.protocol.metadata import MetadataRequest

        from streams.kafka_security import client_kwargs

        client = self._client
        if client is None:
            client = self._client = AIOKafkaClient(
                **client_kwargs(self.settings),
                client_id=f"{self.settings.app_id}-health",
                request_timeout_ms=max(1000, int(self.settings.health_check_timeout_s * 1000)),
                metadata_max_age_ms=300_000,
            )
        nodes = [broker.nodeId for broker in client.cluster.brokers()]
        random.shuffle(nodes)
        for node in nodes:
            try:
                await client.send(node, MetadataRequest([self.topic]))
            except Exception as exc:  # the next broker may answer
                log.debug("health: broker %s did not answer: %r", node, exc)
                continue
            return
        await client.bootstrap()  # none known, or none answered: ask the bootstrap servers

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


class HealthService(Service):
    """Runs the probe with the app (a dependency of the Faust app: starts before it)."""

    def __init__(self, probe: BrokerProbe, on_stop: Callable[[], Coroutine[Any, Any, None]]):
        super().__init__()
        self.probe = probe
        self._close = on_stop

    @Service.task
    async def _checks(self) -> None:
        await self.probe.run()

    async def on_stop(self) -> None:
        await self._close()


# --------------------------------------------------------------------------- the app's state


def _consumer(app: Any) -> Any:
    """The app's consumer if it exists (reading ``app.consumer`` would create one)."""
    return getattr(app, "_consumer", None)


def assigned(app: Any) -> set[Any]:
    """The consumer's assignment (stream and changelog partitions); empty before it runs."""
    consumer = _consumer(app)
    if consumer is None:
        return set()
    try:
        return set(consumer.assignment())
    except Exception:  # not started yet, or stopping
        return set()


def app_readiness(app: Any, broker: BrokerStatus, *, now: float, stale_after_s: float) -> Readiness:
    consumer = _consumer(app)
    tps = assigned(app)
    is_changelog = getattr(consumer, "_is_changelog_tp", None)
    streams = [tp for tp in tps if is_changelog is None or not is_changelog(tp)]
    return readiness(
        broker,
        now=now,
        stale_after_s=stale_after_s,
        joined=getattr(app, "rebalancing_count", 0) > 0,
        rebalancing=bool(getattr(app, "rebalancing", False)),
        in_recovery=bool(getattr(app, "in_recovery", False)),
        partitions=len(streams),
    )


def partition_lags(
    tps: Iterable[Any],
    *,
    highwater: Callable[[Any], int | None],
    committed: Mapping[Any, int | None],
    is_changelog: Callable[[Any], bool],
) -> dict[Any, int]:
    """Per stream partition: high watermark minus committed offset (both are *next*
    offsets), never negative. Partitions without both numbers yet, and changelogs (read by
    table recovery, never committed), are left out."""
    lags: dict[Any, int] = {}
    for tp in tps:
        if is_changelog(tp):
            continue
        done = committed.get(tp)
        if done is None:
            continue
        try:
            high = highwater(tp)
        except Exception:  # revoked meanwhile, or no fetch yet
            high = None
        if high is not None:
            lags[tp] = max(0, high - done)
    return lags


def queue_depths(agents: Mapping[str, Any]) -> dict[str, int]:
    """Per agent (stage): events in its streams' buffers, fetched and not yet taken."""
    depths: dict[str, int] = {}
    for name, agent in list(agents.items()):
        queues: dict[int, Any] = {}
        for actor in list(getattr(agent, "_actors", ())):
            channel = getattr(getattr(actor, "stream", None), "channel", None)
            queue = getattr(channel, "_queue", None)
            if queue is not None:
                queues[id(queue)] = queue
        depths[name] = sum(queue.qsize() for queue in queues.values())
    return depths


class RuntimeCollector(Collector):
    """Prometheus gauges read from the running app when ``/metrics`` is scraped."""

    def __init__(
        self, app: Any, probe: BrokerProbe, pools: Mapping[str, Any] | None = None
    ) -> None:
        self.app = app
        self.probe = probe
        self.pools = pools if pools is not None else {}

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "assetline_consumer_lag",
                "Events not yet committed per partition: high watermark - committed offset.",
                labels=["topic", "partition"],
            ),
            GaugeMetricFamily(
                "assetline_stage_queue_depth",
                "Events fetched for a stage and not started: buffered for its agent, or taken "
                "and waiting in its pool for a slot.",
                labels=["stage"],
            ),
            GaugeMetricFamily(
                "assetline_broker_reachable",
                "1 when a Kafka broker answered the last health check (0 unreachable, "
                "-1 not checked yet).",
            ),
            GaugeMetricFamily(
                "assetline_ready", "1 when /readyz answers 200, 0 when it answers 503."
            ),
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag, depth, reachable, ready = self._families()
        app = self.app
        consumer = _consumer(app)
        if consumer is not None:
            is_changelog = getattr(consumer, "_is_changelog_tp", lambda tp: False)
            lags = partition_lags(
                assigned(app),
                highwater=consumer.highwater,
                committed=dict(getattr(consumer, "_committed_offset", {})),
                is_changelog=is_changelog,
            )
            for tp, value in sorted(lags.items()):
                lag.add_metric([tp.topic, str(tp.partition)], value)
        try:
            depths = queue_depths(app.agents)
        except Exception:
            depths = {}
        for stage, pool in list(self.pools.items()):
            depths[stage] = depths.get(stage, 0) + pool.waiting  # taken, waiting for a slot
        for stage, value in sorted(depths.items()):
            depth.add_metric([stage], value)
        status = self.probe.status
        reachable.add_metric([], -1 if status.reachable is None else int(status.reachable))
        state = app_readiness(
            app, status, now=time.monotonic(), stale_after_s=self.probe.stale_after_s
        )
        ready.add_metric([], int(state.ready))
        yield from (lag, depth, reachable, ready)


def install_health(
    app: faust.App,
    registry: CollectorRegistry,
    settings: Settings,
    *,
    probe_topic: str,
    pools: Mapping[str, Any] | None = None,
) -> BrokerProbe:
    """``/healthz``, ``/readyz`` and the runtime gauges on a line's app and registry; the
    broker check asks for the metadata of ``probe_topic``."""
    ask = KafkaAsk(settings, probe_topic)
    probe = BrokerProbe(
        ask,
        interval_s=settings.health_check_interval_s,
        timeout_s=settings.health_check_timeout_s,
        secrets=kafka_secrets(settings),
    )
    app.add_dependency(HealthService(probe, ask.close))
    registry.register(RuntimeCollector(app, probe, pools))
    started = time.monotonic()

    @app.page("/healthz")
    async def healthz(view: Any, request: Any) -> Any:
        return view.json({"alive": True, "uptime_s": round(time.monotonic() - started, 1)})

    @app.page("/readyz")
    async def readyz(view: Any, request: Any) -> Any:
        state = app_readiness(
            app, probe.status, now=time.monotonic(), stale_after_s=probe.stale_after_s
        )
        return view.json(state.body(), status=200 if state.ready else 503)

    return probe
