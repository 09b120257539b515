"""Alert routing on a real broker: a provider outage of 1,000 requests reaches people as a
handful of messages per channel, and the breaker's closing resolves the incident.

A real worker generates against a local OpenAI-compatible server that answers 500 to every
call (its breaker opens after 5 failures and probes every 2 s), then the server recovers and
a few more requests close the breaker. The router (``agents.alerts.router``, what
``assetline alerts route`` runs) follows ``.alerts`` and sends to local receivers speaking
Slack's incoming webhook, PagerDuty Events v2 and Standard Webhooks.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from agents.alerts.channels import parse_channels, resolve_channels
from agents.alerts.router import run_alert_router
from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AlertKind, AssetKind, Constraints, GenerationRequest, ModelSpec
from streams.codecs import Codecs
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import read_topic, submit_requests
from tests.support.alert_receivers import HOOK_SECRET, ROUTING_KEY, AlertReceivers
from tests.support.provider_server import (
    Reply,
    openai_chat_response,
    openai_error,
    provider_server,
)

pytestmark = pytest.mark.integration

API_KEY = "sk-alerts-" + uuid.uuid4().hex
OUTAGE = 1000
FAILED = AlertKind.ALL_PROVIDERS_FAILED.value

ROUTING = """
providers:
  primary:
    type: openai
    base_url: {url}/v1
    api_key: primary
    breaker: {{failure_threshold: 5, reset_after_s: 2}}
aliases:
  copy:
    latency_budget_ms: 20000
    chain:
      - {{provider: primary, model: gpt-4o-mini, timeout_s: 5, max_retries: 0,
          price: {{input_per_1k: 0.15, output_per_1k: 0.6}}}}
    fallback: {{text: "Great offers, every day."}}
default_alias: copy
"""

CHANNELS = """
interval_s: 15
quiet_s: 600
retry_delays_s: [0, 0.5, 2]
timeout_s: 5
allow: [127.0.0.1]
channels:
  - {{name: team, type: slack, url_secret: slack-url, min_severity: warning}}
  - {{name: oncall, type: pagerduty, url: "{url}/v2/enqueue", routing_key: pd, min_severity: error}}
  - {{name: ops, type: webhook, url: "{url}/hook", secret: ops-hook, min_severity: info}}
"""


def _requests(count: int, run: str) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            request_id=f"alr-{run}-{i:04d}",
            idempotency_key=f"alr-{run}-{i:04d}",
            tenant="acme",
            campaign_id="outage",
            kind=AssetKind.TEXT,
            prompt_template="Headline for ${persona}",
            variables={"persona": f"runner {i}"},
            model=ModelSpec(alias="copy"),
            constraints=Constraints(max_chars=80),
        )
        for i in range(count)
    ]


class RouterThread:
    """The router on its own event loop, as its own process would run it."""

    def __init__(self, settings: Settings, receivers: AlertReceivers) -> None:
        self.config = parse_channels(CHANNELS.format(url=receivers.url), ".yaml", "alerts.yaml")
        keys = {
            "slack-url": SecretStr(f"{receivers.url}/slack"),
            "pd": SecretStr(ROUTING_KEY),
            "ops-hook": SecretStr(HOOK_SECRET),
        }
        self.channels = resolve_channels(self.config, keys)
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.ready = asyncio.Event()
        self.stop = asyncio.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(
                run_alert_router(
                    self.settings, self.config, self.channels, ready=self.ready, stop=self.stop
                )
            )
        except BaseException as exc:
            self.error = exc

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.ready.is_set():
            assert self.error is None, self.error
            assert time.monotonic() < deadline, "router did not start"
            time.sleep(0.05)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=15)


def _wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def test_outage_of_1000_requests_is_under_10_messages_per_channel(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
) -> None:
    healthy = threading.Event()

    def chat(body: Any) -> Reply:
        if healthy.is_set():
            return Reply(json=openai_chat_response("Trail shoes that grip.", model=body["model"]))
        return Reply(status=500, json=openai_error("upstream exploded", "server_error"))

    receivers = AlertReceivers().start()
    with provider_server() as server:
        server.handle("POST", "/v1/chat/completions", chat)
        routing = tmp_path / "routing.yaml"
        routing.write_text(ROUTING.format(url=server.url))
        settings = line_settings.model_copy(
            update={"routing_file": routing, "api_keys": {"primary": SecretStr(API_KEY)}}
        )
        router = RouterThread(settings, receivers)
        try:
            worker = start_worker(settings)
            router.start()
            run = uuid.uuid4().hex[:8]
            outage = _requests(OUTAGE, run)
            asyncio.run(submit_requests(settings, outage))
            ids = [r.request_id for r in outage]
            done = asyncio.run(await_completions(settings, ids, timeout=240))
            assert len(done) == OUTAGE, worker.log_tail()

            healthy.set()  # the provider is back: the next probe closes the breaker
            time.sleep(2.5)
            after = _requests(5, run + "b")
            asyncio.run(submit_requests(settings, after))
            later = asyncio.run(
                await_completions(settings, [r.request_id for r in after], timeout=60)
            )
            assert len(later) == 5, worker.log_tail()

            def resolved() -> bool:
                return any(
                    c.body["event_action"] == "resolve" for c in receivers.calls("pagerduty")
                )

            assert _wait_for(resolved, 30), receivers.calls("pagerduty")
            names = TopicNames.with_prefix(settings.topic_prefix)
            codec = Codecs.load().alert
            records = asyncio.run(read_topic(settings, names.alerts, min_messages=1, timeout=10))
            kinds = Counter(codec.decode(r.value).kind for r in records)  # type: ignore[attr-defined]
            written = kinds[AlertKind.ALL_PROVIDERS_FAILED]

            def counted() -> int:
                return sum(
                    c.body["count"] for c in receivers.calls("hook") if c.body["kind"] == FAILED
                )

            # the last interval's count goes out once the interval has passed
            assert _wait_for(lambda: counted() == written, 30), (counted(), written)
            time.sleep(1.0)  # anything still in flight
        finally:
            router.close()
            receivers.stop()
    assert router.error is None, router.error

    counts = {name: len(receivers.calls(name)) for name in ("slack", "pagerduty", "hook")}
    print(f"{dict(kinds)} alerts on .alerts; messages per channel: {counts}")
    assert all(c.valid and c.status < 300 for c in receivers.calls())
    assert all(0 < n < 10 for n in counts.values()), counts

    pd = [c.body for c in receivers.calls("pagerduty")]
    breaker = "assetline/BREAKER_OPENED/primary"
    assert next(b["event_action"] for b in pd if b["dedup_key"] == breaker) == "trigger"
    assert [b["event_action"] for b in pd if b["dedup_key"] == breaker][-1] == "resolve"
    failed = [b for b in pd if b["dedup_key"] == f"assetline/{FAILED}/copy"]
    assert failed, "the fallbacks' alerts reached on-call"
    hooks = [c.body for c in receivers.calls("hook")]
    assert {h["action"] for h in hooks} == {"trigger", "resolve"}
    assert API_KEY not in worker.log_tail(10_000)
