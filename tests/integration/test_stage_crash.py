"""A request that really crashes a stage still ends in one completion (issue 14 #1, real broker).

The worker's generate stage is made to raise for one prompt (``CRASH_HOOK``, loaded into the
worker's interpreter as ``sitecustomize``), outside every guard of its pure function.
Before the fix the event was dead-lettered and the request never completed. Now it is
dead-lettered *and* completed FAILED with reason ``stage.crashed``, once; ordinary requests on the
same line are delivered and the worker keeps running.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, CompletionStatus, GenerationRequest
from streams.dead_letters import header_map
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import submit_requests
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    provider_server,
)

pytestmark = pytest.mark.integration

API_KEY = "sk-crash-" + uuid.uuid4().hex
ROUTING = """
providers:
  primary:
    type: openai
    base_url: {url}/v1
    api_key: primary
aliases:
  copy:
    chain:
      - {{provider: primary, model: gpt-4o-mini, timeout_s: 5, max_retries: 0,
          price: {{input_per_1k: 1.0, output_per_1k: 1.0}}}}
default_alias: copy
"""


def _answer(body: dict[str, Any]) -> Reply:
    return Reply(json=openai_chat_response("Run further, every day.", model="gpt-4o-mini"))


#: Loaded by the worker's interpreter at start (``sitecustomize`` on its PYTHONPATH): makes
#: generate crash for one request. The input hardening leaves no input that crashes a stage
#: (an unencodable model name did until reported names were checked), so the test injects
#: the bug; the message carries the provider key and a lone surrogate, which the completion
#: must not.
CRASH_HOOK = """
import agents.generate.generate_one as generate_one

_real = generate_one.generate_asset


async def generate_asset(request, *args, **kwargs):
    if "poisoned" in request.prompt_template:
        raise RuntimeError("injected crash with key {key} and \\ud800")
    return await _real(request, *args, **kwargs)


generate_one.generate_asset = generate_asset
"""


@pytest.fixture
def model_server() -> Iterator[ProviderServer]:
    with provider_server() as server:
        server.handle("POST", "/v1/chat/completions", _answer)
        yield server


def _request(run: str, name: str, prompt: str) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"crash-{run}-{name}",
        idempotency_key=f"crash-{run}-{name}",
        tenant="acme",
        campaign_id="crash",
        kind=AssetKind.TEXT,
        prompt_template=prompt,
    )


def test_a_request_that_crashes_generate_ends_failed_once_and_is_dead_lettered(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    model_server: ProviderServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.format(url=model_server.url))
    settings = line_settings.model_copy(
        update={"routing_file": routing, "api_keys": {"primary": SecretStr(API_KEY)}}
    )
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CRASH_HOOK.format(key=API_KEY))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    )
    run = uuid.uuid4().hex[:8]
    poisoned = _request(run, "poisoned", "A poisoned headline")
    fine = [_request(run, f"fine-{i}", f"An ordinary headline {i}") for i in range(3)]
    requests = [fine[0], poisoned, *fine[1:]]
    asyncio.run(submit_requests(settings, requests))
    worker = start_worker(settings)

    ids = [r.request_id for r in requests]
    seen = asyncio.run(await_completions(settings, ids, timeout=90))
    assert sorted(seen) == sorted(ids), worker.log_tail()
    for request in fine:
        assert [c.status for c in seen[request.request_id]] == [CompletionStatus.DELIVERED]

    names = TopicNames.with_prefix(settings.topic_prefix)
    letters = asyncio.run(read_to_end(settings.kafka_bootstrap, names.deadletter))
    mine = [m for m in letters if m.key == poisoned.request_id.encode()]
    assert len(mine) == 1, [header_map(m.headers) for m in letters]
    headers = header_map(mine[0].headers)
    assert headers["assetline.dlq.stage"] == "generate"
    assert headers["assetline.dlq.error.code"] == "generate.crashed"

    # Read the whole topic once more after the dead letter: still exactly one completion.
    completed = asyncio.run(read_to_end(settings.kafka_bootstrap, names.completed))
    ends = [m for m in completed if m.key == poisoned.request_id.encode()]
    assert len(ends) == 1
    (done,) = seen[poisoned.request_id]
    assert done.status is CompletionStatus.FAILED
    assert done.attempt == 1
    assert done.reasons[0].startswith("stage.crashed: generate: "), done.reasons
    assert "\ud800" not in done.reasons[0]
    assert API_KEY not in done.reasons[0]
    assert worker.alive(), worker.log_tail()
