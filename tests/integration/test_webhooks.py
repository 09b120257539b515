"""Completion webhooks on a real broker, to a real local receiver that verifies signatures.

One receiver is down for its first two calls (then delivered, same webhook-id every time),
one is down for good (dead-lettered after the schedule), one answers 410 Gone (called once).
The schedule lives in Kafka retry topics, shortened here to 0.3 s and 0.6 s.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook

from streams.client import LineClient, await_completions
from streams.deadletter import header_map
from streams.records import AssetKind, Constraints, GenerationRequest
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from streams.worker_process import WorkerProcess
from tests.integration.helpers import read_topic
from tests.support.provider_server import ProviderServer, Reply, provider_server

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


@pytest.fixture
def receiver() -> Iterator[ProviderServer]:
    with provider_server() as server:
        yield server


def _request(run: str, name: str, url: str) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"wh-{run}-{name}",
        idempotency_key=f"wh-{run}-{name}",
        tenant="acme",
        campaign_id="hooks",
        kind=AssetKind.TEXT,
        prompt_template="Copy for ${p}",
        variables={"p": name},
        constraints=Constraints(max_chars=200),
        callback_url=url,
    )


def test_webhooks_are_signed_retried_from_kafka_and_dead_lettered(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    receiver: ProviderServer,
) -> None:
    receiver.script("POST", "/hooks/flaky", [Reply(status=503), Reply(status=503)])
    receiver.handle("POST", "/hooks/flaky", lambda body: Reply(status=204))
    receiver.handle("POST", "/hooks/down", lambda body: Reply(status=503))
    receiver.handle("POST", "/hooks/gone", lambda body: Reply(status=410))
    settings = line_settings.model_copy(
        update={
            "api_keys": {"webhooks": SecretStr(SECRET)},
            "webhook_allow": ("127.0.0.1",),
            "webhook_schedule_s": (0.0, 0.3, 0.6),
            "stages": ("generate", "validate", "deliver", "review", "notify"),
        }
    )
    run = uuid.uuid4().hex[:8]
    requests = [_request(run, n, f"{receiver.url}/hooks/{n}") for n in ("flaky", "down", "gone")]

    async def submit() -> None:
        await ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings))
        async with LineClient(settings) as client:
            await client.submit(requests)

    asyncio.run(submit())
    worker = start_worker(settings)
    ids = [r.request_id for r in requests]
    done = asyncio.run(await_completions(settings, ids, timeout=90))
    assert set(done) == set(ids), worker.log_tail()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (
            len(receiver.requests_to("/hooks/flaky")) >= 3
            and len(receiver.requests_to("/hooks/down")) >= 3
        ):
            break
        time.sleep(0.2)
    time.sleep(1.0)  # a stray extra call would land now

    verifier = Webhook(SECRET)
    flaky = receiver.requests_to("/hooks/flaky")
    assert len(flaky) == 3, worker.log_tail()
    for seen in flaky:
        payload = verifier.verify(seen.body, dict(seen.headers))  # raises on a bad signature
        assert payload["data"]["request_id"] == ids[0]
        assert payload["type"] == "asset.completed"
        assert "location" in payload["data"]
    assert len({seen.headers["webhook-id"] for seen in flaky}) == 1  # one id, three attempts

    assert len(receiver.requests_to("/hooks/down")) == 3  # the whole schedule, then no more
    assert len(receiver.requests_to("/hooks/gone")) == 1  # 410: never called again

    names = TopicNames.with_prefix(settings.topic_prefix)
    dead = asyncio.run(read_topic(settings, names.deadletter, min_messages=1, timeout=10))
    reasons = [header_map(m.headers) for m in dead]  # type: ignore[attr-defined]
    assert [h["assetline.dlq.error.code"] for h in reasons] == ["webhook.http_status"]
    assert "/hooks/down" in reasons[0]["assetline.dlq.error.reason"]
    assert SECRET not in worker.log_tail(10_000)
