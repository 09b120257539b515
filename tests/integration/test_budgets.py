"""A campaign budget holds across a group of workers, not once per worker.

Each worker's spend table holds only its own partitions; the spend follower reads the others'
totals from the changelog. Without it, two workers would together spend up to twice the ceiling.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from assetline.client import LineClient, await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, CompletionStatus, Constraints, GenerationRequest, ModelSpec
from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs
from tests.integration.helpers import worker_metric
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    provider_server,
)

pytestmark = pytest.mark.integration

# Each call: 1,000 input + 1,000 output tokens at $0.5 + $0.5 per 1k = $1.00; the pre-check
# estimates exactly that (estimated_input_tokens and max_output_tokens below).
ROUTING = """
providers:
  paid: {{type: openai, base_url: "{url}/v1", api_key: paid}}
aliases:
  copy:
    chain:
      - {{provider: paid, model: m, version: m-1, max_retries: 0, timeout_s: 5,
          estimated_input_tokens: 1000, max_output_tokens: 1000,
          price: {{input_per_1k: 0.5, output_per_1k: 0.5}}}}
default_alias: copy
budgets: {{campaigns: {{capped: 10.0}}}}
"""
CEILING_CALLS = 10


@pytest.fixture
def paid_server() -> Iterator[ProviderServer]:
    with provider_server() as server:
        reply = openai_chat_response("Fast shoes.", prompt_tokens=1000, completion_tokens=1000)
        server.handle("POST", "/v1/chat/completions", lambda body: Reply(json=reply, delay_s=0.1))
        yield server


def _wait_ready(worker: WorkerProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Ready" in worker.log_tail(400):
            return
        time.sleep(0.2)
    raise AssertionError(f"worker not ready:\n{worker.log_tail()}")


def _wait_members(worker: WorkerProcess, want: float, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.alive(), worker.log_tail()
        if worker_metric(worker.settings.web_port, "assetline_group_members") == want:
            return
        time.sleep(0.2)
    raise AssertionError(f"group members never {want}:\n{worker.log_tail()}")


def test_two_workers_share_one_campaign_budget(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    paid_server: ProviderServer,
    tmp_path: Path,
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.format(url=paid_server.url))
    settings = line_settings.model_copy(
        update={
            "routing_file": routing,
            "api_keys": {"paid": SecretStr("sk-paid")},
            "generate_concurrency": 1,
        }
    )
    asyncio.run(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)))
    first = start_worker(settings)
    _wait_ready(first)
    (port,) = __import__("assetline.dev.broker", fromlist=["free_ports"]).free_ports(1)
    second = start_worker(settings.model_copy(update={"web_port": port}))
    _wait_ready(second)
    # the group settled on two members (each worker's router saw the rebalance) before the
    # requests arrive
    _wait_members(first, 2)
    _wait_members(second, 2)

    run = uuid.uuid4().hex[:8]
    requests = [
        GenerationRequest(
            request_id=f"cap-{run}-{i:03d}",
            idempotency_key=f"cap-{run}-{i:03d}",
            tenant="acme",
            campaign_id="capped",
            kind=AssetKind.TEXT,
            prompt_template="Headline",
            model=ModelSpec(alias="copy"),
            constraints=Constraints(max_chars=80),
        )
        for i in range(40)
    ]

    async def submit() -> None:
        async with LineClient(settings) as client:
            await client.submit(requests)

    asyncio.run(submit())
    ids = [r.request_id for r in requests]
    completions = asyncio.run(await_completions(settings, ids, timeout=120))
    assert len(completions) == 40, first.log_tail() + second.log_tail()
    statuses = [c[0].status for c in completions.values()]
    delivered = statuses.count(CompletionStatus.DELIVERED)
    blocked = [c[0] for c in completions.values() if c[0].status is CompletionStatus.FAILED]
    assert all("cost_budget_exceeded" in c.reasons[0] for c in blocked)
    assert delivered + len(blocked) == 40
    # One call in flight per worker can pass the pre-check before the other's charge lands.
    assert CEILING_CALLS <= delivered <= CEILING_CALLS + 2, delivered
    served = len(paid_server.requests_to("/v1/chat/completions"))
    assert served == delivered
