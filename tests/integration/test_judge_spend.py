"""The AI judge's spend on a real broker: booked, and counted by generation in another worker.

Validate runs in a worker of its own, generate (and deliver) in another. Each text request
costs $0.50 to generate and $0.40 to judge against a $2.00 campaign ceiling: two requests
spend $1.80, so the third is refused before its generation only because the judges' $0.80,
booked by the validate worker in ``.spend.judge``, reached the generate worker's budget.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from assetline.client import await_completions
from assetline.dev.broker import free_ports
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, CompletionStatus, GenerationRequest, ModelSpec
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import read_topic, submit_requests
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    provider_server,
)

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"
ROUTING = """
providers:
  paid: {{type: openai, base_url: "{url}/v1", api_key: paid}}
aliases:
  copy:
    chain:
      - {{provider: paid, model: writer, version: writer-1, max_retries: 0, timeout_s: 5,
          estimated_input_tokens: 1000, max_output_tokens: 1000,
          price: {{input_per_1k: 0.25, output_per_1k: 0.25}}}}
default_alias: copy
budgets: {{campaigns: {{capped: 2.0}}}}
"""
PROFILE = """
id: acme
name: ACME Corp
copyright: "(c) 2026 ACME Corp"
judge:
  provider: paid
  model: judge-mini
  rubric: "Is this friendly marketing copy?"
  kinds: [TEXT]
  max_retries: 0
  price: {input_per_1k: 0.5, output_per_1k: 0.5}
"""
GENERATION_COST = 0.5  # 1,000 + 1,000 tokens at $0.25 per 1k
JUDGE_COST = 0.4  # 600 + 200 tokens at $0.50 per 1k


def _chat(body: Any) -> Reply:
    if body["model"] == "judge-mini":
        verdict = json.dumps({"verdict": "pass", "score": 0.9, "reasons": ["friendly"]})
        reply = openai_chat_response(verdict, prompt_tokens=600, completion_tokens=200)
    else:
        reply = openai_chat_response("Trail shoes.", prompt_tokens=1000, completion_tokens=1000)
    return Reply(json=reply)


@pytest.fixture
def paid_server() -> Iterator[ProviderServer]:
    with provider_server() as server:
        server.handle("POST", CHAT, _chat)
        yield server


def _request(run: str, n: int) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"js-{run}-{n}",
        idempotency_key=f"js-{run}-{n}",
        tenant="acme",
        campaign_id="capped",
        kind=AssetKind.TEXT,
        prompt_template="Headline",
        model=ModelSpec(alias="copy"),
        brand_profile_id="acme",
    )


def _totals(settings: Settings, topic: str) -> dict[str, float]:
    """The latest total per key of a spend changelog."""
    messages = asyncio.run(read_topic(settings, topic, min_messages=1, timeout=10))
    latest: dict[str, float] = {}
    for message in messages:
        latest[json.loads(message.key)] = json.loads(message.value)  # type: ignore[attr-defined]
    return latest


def _scope(totals: dict[str, float], prefix: str) -> float:
    return sum(value for key, value in totals.items() if key.startswith(prefix))


def _wait_for(settings: Settings, topic: str, prefix: str, total: float) -> dict[str, float]:
    deadline = time.monotonic() + 30
    totals = _totals(settings, topic)
    while _scope(totals, prefix) < total - 1e-9 and time.monotonic() < deadline:
        time.sleep(0.5)
        totals = _totals(settings, topic)
    return totals


def test_judge_spend_is_booked_by_a_validate_worker_and_counted_by_generation(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    paid_server: ProviderServer,
    tmp_path: Path,
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.format(url=paid_server.url))
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "acme.yaml").write_text(PROFILE)
    settings = line_settings.model_copy(
        update={
            "routing_file": routing,
            "profiles_dir": profiles,
            "api_keys": {"paid": SecretStr("sk-paid")},
        }
    )
    run = uuid.uuid4().hex[:8]
    first, second, third = (_request(run, n) for n in range(3))
    asyncio.run(submit_requests(settings, [first]))
    (port,) = free_ports(1)
    generating = start_worker(
        settings.model_copy(update={"stages": ("generate", "deliver", "review", "notify")})
    )
    judging = start_worker(
        settings.model_copy(
            update={"stages": ("validate",), "web_port": port, "data_dir": tmp_path / "judge"}
        )
    )

    def logs() -> str:
        return generating.log_tail() + judging.log_tail()

    names = TopicNames.with_prefix(settings.topic_prefix)
    for number, request in enumerate((first, second), start=1):
        if number == 2:
            asyncio.run(submit_requests(settings, [request]))
        done = asyncio.run(await_completions(settings, [request.request_id], timeout=120))
        (completion,) = done[request.request_id]
        assert completion.status is CompletionStatus.DELIVERED, logs()
        assert completion.cost == pytest.approx(GENERATION_COST + JUDGE_COST)
        # the judge's running total for the campaign, in its own lane of the ledger
        judged = _wait_for(settings, names.spend_judge, "campaign:capped|judge|p", number * 0.4)
        assert _scope(judged, "campaign:capped|judge|p") == pytest.approx(number * JUDGE_COST)
        assert _scope(judged, "tenant:acme|judge|p") == pytest.approx(number * JUDGE_COST)
    # each verdict was recorded (acknowledged before its asset went on), so a copy of the raw
    # event that comes round again reuses it instead of paying the judge again
    recorded = asyncio.run(read_topic(settings, names.judgements, min_messages=2, timeout=10))
    assert sorted(message.key for message in recorded) == [  # type: ignore[attr-defined]
        f"{request.request_id}|1|".encode() for request in (first, second)
    ]
    generated = _totals(settings, names.spend)
    assert _scope(generated, "campaign:capped|p") == pytest.approx(2 * GENERATION_COST)
    time.sleep(2)  # the generate worker's spend follower polls every 0.5 s

    # $1.80 spent + a $0.50 estimate > $2.00; without the judges' $0.80 it would be $1.50.
    asyncio.run(submit_requests(settings, [third]))
    done = asyncio.run(await_completions(settings, [third.request_id], timeout=120))
    (completion,) = done[third.request_id]
    assert completion.status is CompletionStatus.FAILED, logs()
    assert "cost_budget_exceeded" in completion.reasons[0]
    models = [seen.json["model"] for seen in paid_server.requests_to(CHAT)]  # type: ignore[index]
    assert sorted(models) == ["judge-mini", "judge-mini", "writer-1", "writer-1"]
