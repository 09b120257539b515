"""The thin consumer: read ``<prefix>.alerts``, group, send to every channel that wants it.

Runs as ``assetline alerts route`` (its own process, like the console): alerting must keep
working when workers are down or busy, and one slow channel must not hold a stage. It starts
at the end of the topic (what happened before it started was already routed or is stale);
the grouping state lives in memory, so a restart may send one more trigger per open cause,
which PagerDuty folds into the open incident by its ``dedup_key``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.alerts.channels import Channel, ChannelsFile
from agents.alerts.deliver import Sent, send_notice
from agents.alerts.grouping import Grouper, Notice
from agents.egress.pinning import WebhookClient
from agents.egress.ssrf import Resolver, system_resolver
from schemas.records import Alert
from streams.codecs import Codecs
from streams.kafka import open_topic_reader, topic_exists
from streams.settings import Settings
from streams.topics import TopicNames

log = logging.getLogger(__name__)


@dataclass
class AlertRouter:
    """Grouping plus delivery; :meth:`add` and :meth:`tick` return what was sent."""

    channels: Sequence[Channel]
    config: ChannelsFile
    client: WebhookClient
    resolver: Resolver = system_resolver
    clock: Callable[[], float] = time.time
    sent: Counter[str] = field(default_factory=Counter)
    grouper: Grouper = field(init=False)

    def __post_init__(self) -> None:
        self.grouper = Grouper(self.config.interval_s, self.config.quiet_s)

    async def add(self, alert: Alert) -> list[Sent]:
        return await self.dispatch(self.grouper.add(alert, self.clock()))

    async def tick(self) -> list[Sent]:
        return await self.dispatch(self.grouper.tick(self.clock()))

    async def dispatch(self, notices: Iterable[Notice]) -> list[Sent]:
        """Each notice to the channels whose minimum it meets, channels concurrently."""
        calls = [
            send_notice(
                self.client, channel, notice,
                allow=self.config.allow, delays_s=self.config.retry_delays_s,
                timeout_s=self.config.timeout_s, resolver=self.resolver,
            )
            for notice in notices
            for channel in self.channels
            if notice.severity >= channel.min_severity
        ]  # fmt: skip
        results = list(await asyncio.gather(*calls))
        for result in results:
            if result.delivered:
                self.sent[result.channel] += 1
        return results


async def route_alerts(
    settings: Settings,
    router: AlertRouter,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    poll_s: float = 0.5,
) -> None:
    """Follow the alerts topic from its end until ``stop`` is set (forever by default)."""
    topic = TopicNames.with_prefix(settings.topic_prefix).alerts
    codec = Codecs.load().alert
    reader = await _open_when_created(settings, topic, stop)
    if reader is None:
        return
    try:
        await reader.seek_to_end()
        for tp in reader.assignment():
            await reader.position(tp)  # resolve the end now: nothing written later is skipped
        log.info("routing alerts of %s to %d channel(s)", topic, len(router.channels))
        if ready is not None:
            ready.set()
        while stop is None or not stop.is_set():
            batch = await reader.getmany(timeout_ms=int(poll_s * 1000))
            for records in batch.values():
                for record in records:
                    alert = _decode(codec, record)
                    if alert is not None:
                        await router.add(alert)
            await router.tick()
    finally:
        await reader.stop()


async def _open_when_created(
    settings: Settings, topic: str, stop: asyncio.Event | None, wait_s: float = 1.0
) -> Any:
    """A reader of ``topic`` once it exists (the router may start before the first worker
    creates the line's topics); None when stopped first."""
    waiting = False
    while stop is None or not stop.is_set():
        if await topic_exists(settings, topic):
            return await open_topic_reader(settings, topic)
        if not waiting:
            log.info("waiting for %s to be created (start a worker)", topic)
            waiting = True
        await asyncio.sleep(wait_s)
    return None


def _decode(codec: Any, record: Any) -> Alert | None:
    try:
        alert: Alert = codec.decode(record.value or b"", list(record.headers or ()))
    except Exception:  # an unreadable alert is skipped, the router goes on
        log.warning("skipped an unreadable alert at offset %s", getattr(record, "offset", "?"))
        return None
    return alert


async def run_alert_router(
    settings: Settings,
    config: ChannelsFile,
    channels: Sequence[Channel],
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> AlertRouter:
    """``assetline alerts route``: one pinned HTTP client for every channel, until ``stop``."""
    async with WebhookClient() as client:
        router = AlertRouter(channels, config, client)
        await route_alerts(settings, router, ready=ready, stop=stop)
        return router
