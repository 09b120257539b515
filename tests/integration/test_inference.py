"""The inference layer on a real broker, against a real OpenAI-compatible HTTP server.

The primary provider fails half of its calls (500s and 503s); every request must still end in
exactly one completion, DELIVERED (served by the primary) or FALLBACK (the alias's stand-in),
with the provider that served it recorded.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import SecretStr

from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import (
    AlertKind,
    AssetKind,
    CompletionStatus,
    Constraints,
    GenerationRequest,
    ModelSpec,
)
from streams.codecs import Codecs
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import read_topic, submit_requests
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    openai_error,
    provider_server,
)

pytestmark = pytest.mark.integration

API_KEY = "sk-integration-" + uuid.uuid4().hex
PINNED = "gpt-4o-mini-2024-07-18"

ROUTING = """
providers:
  primary:
    type: openai
    base_url: {url}/v1
    api_key: primary
    breaker: {{failure_threshold: 1000, reset_after_s: 5}}
aliases:
  copy:
    latency_budget_ms: 20000
    chain:
      - {{provider: primary, model: gpt-4o-mini, version: {pinned}, timeout_s: 5,
          max_retries: 0, price: {{input_per_1k: 0.15, output_per_1k: 0.6}}}}
    fallback: {{text: "Great offers, every day."}}
  hero:
    latency_budget_ms: 20000
    chain:
      - {{provider: primary, model: gpt-image-1, timeout_s: 5, max_retries: 0,
          price: {{per_image: 0.04}}}}
    fallback: {{placeholder: true}}
default_alias: copy
"""


class FlakyOpenAI:
    """Answers like OpenAI, failing each call with probability one half (seeded)."""

    def __init__(self) -> None:
        self._rng = random.Random(20261124)
        self._lock = threading.Lock()
        self.failed = 0
        self.served = 0

    def _fails(self) -> bool:
        with self._lock:
            fails = self._rng.random() < 0.5
            self.failed += fails
            self.served += not fails
            return fails

    def chat(self, body: Any) -> Reply:
        if self._fails():
            return Reply(status=500, json=openai_error("upstream exploded", "server_error"))
        return Reply(json=openai_chat_response("Trail shoes that grip.", model=body["model"]))

    def image(self, body: Any) -> Reply:
        if self._fails():
            return Reply(status=503, json=openai_error("overloaded", "server_error"))
        width, height = (int(side) for side in body["size"].split("x"))
        buffer = io.BytesIO()
        Image.new("RGB", (width, height), (30, 90, 160)).save(buffer, "PNG")
        image = base64.b64encode(buffer.getvalue()).decode("ascii")
        return Reply(json={"created": 1, "data": [{"b64_json": image}]})


@pytest.fixture
def openai_server() -> Iterator[ProviderServer]:
    with provider_server() as server:
        yield server


def _requests(count: int) -> list[GenerationRequest]:
    run = uuid.uuid4().hex[:8]
    out = []
    for i in range(count):
        image = i % 4 == 0
        out.append(
            GenerationRequest(
                request_id=f"inf-{run}-{i:04d}",
                idempotency_key=f"inf-{run}-{i:04d}",
                tenant="acme",
                campaign_id="failover",
                kind=AssetKind.IMAGE if image else AssetKind.TEXT,
                prompt_template="Hero for ${persona}" if image else "Headline for ${persona}",
                variables={"persona": f"runner {i}"},
                model=ModelSpec(alias="hero" if image else "copy"),
                constraints=(
                    Constraints(width=64, height=64, format="png")
                    if image
                    else Constraints(max_chars=80)
                ),
            )
        )
    return out


def test_half_failing_primary_still_gives_one_completion_each(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    openai_server: ProviderServer,
    tmp_path: Path,
) -> None:
    flaky = FlakyOpenAI()
    openai_server.handle("POST", "/v1/chat/completions", flaky.chat)
    openai_server.handle("POST", "/v1/images/generations", flaky.image)
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.format(url=openai_server.url, pinned=PINNED))
    settings = line_settings.model_copy(
        update={"routing_file": routing, "api_keys": {"primary": SecretStr(API_KEY)}}
    )
    requests = _requests(100)
    asyncio.run(submit_requests(settings, requests))
    worker = start_worker(settings)

    ids = [r.request_id for r in requests]
    completions = asyncio.run(await_completions(settings, ids, timeout=120))
    missing = [i for i in ids if i not in completions]
    assert not missing, f"{len(missing)} without completion; log:\n{worker.log_tail()}"
    assert all(len(c) == 1 for c in completions.values())

    statuses = {c[0].status for c in completions.values()}
    assert statuses == {CompletionStatus.DELIVERED, CompletionStatus.FALLBACK}
    for request in requests:
        (done,) = completions[request.request_id]
        assert done.provider, "every completion names what served it"
        assert done.location is not None
        assert done.sha256 is not None
        if done.status is CompletionStatus.DELIVERED:
            assert done.provider == "primary"
            assert [a.code for a in done.attempts] == [None]
            assert done.cost > 0
            if request.kind is AssetKind.TEXT:
                assert done.model_version == PINNED
        else:
            assert done.provider == "fallback"
            assert done.attempts[0].code in ("provider.unavailable",)
            assert done.reasons, "a FALLBACK completion says why"

    fallbacks = sum(c[0].status is CompletionStatus.FALLBACK for c in completions.values())
    assert fallbacks == flaky.failed  # one call per request, each failure fell back
    assert flaky.failed + flaky.served == 100

    seen = openai_server.requests
    assert {s.headers.get("authorization") for s in seen} == {f"Bearer {API_KEY}"}
    chats = [s.json for s in seen if s.path == "/v1/chat/completions"]
    assert {c["model"] for c in chats} == {PINNED}

    names = TopicNames.with_prefix(settings.topic_prefix)
    alerts = asyncio.run(read_topic(settings, names.alerts, min_messages=fallbacks, timeout=10))
    codec = Codecs.load().alert
    kinds = [codec.decode(m.value).kind for m in alerts]  # type: ignore[attr-defined]
    assert kinds.count(AlertKind.ALL_PROVIDERS_FAILED) == fallbacks
    assert API_KEY not in worker.log_tail(10_000)

    # The spend table's changelog holds each partition's running total for the campaign.
    spend = asyncio.run(read_topic(settings, names.spend, min_messages=1, timeout=10))
    latest: dict[str, float] = {}
    for message in spend:
        latest[json.loads(message.key)] = json.loads(message.value)  # type: ignore[attr-defined]
    campaign = sum(v for k, v in latest.items() if k.startswith("campaign:failover|p"))
    tenant = sum(v for k, v in latest.items() if k.startswith("tenant:acme|p"))
    total_cost = sum(c[0].cost for c in completions.values())
    assert campaign == pytest.approx(total_cost)
    assert tenant == pytest.approx(total_cost)
