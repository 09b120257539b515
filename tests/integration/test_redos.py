"""Issue 12 item 3 on a real broker: a request's backtracking regex cannot freeze the line.

A ``json_schema`` with ``"pattern": "^(a+)+$"`` and a 29-character value held the validate
worker's event loop ~12.7 s per request (heartbeats lost, both groups rebalanced); with 10,000
characters it would never have let go. Now each such request completes (REJECTED when the value
does not match) and an ordinary request submitted right behind them completes promptly.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable

import pytest

from assetline.client import LineClient
from assetline.dev.child_worker import WorkerProcess
from schemas.records import (
    AssetCompleted,
    AssetKind,
    CompletionStatus,
    Constraints,
    GenerationRequest,
)
from streams.settings import Settings
from tests.integration.helpers import submit_requests

pytestmark = pytest.mark.integration

#: An ordinary request normally completes in a second or two; before the fix the line stalled
#: for 12.7 s per 29-character request and for good on the 10,000-character one.
PROMPT_BOUND_S = 30.0


def _request(run: str, name: str, kind: AssetKind, schema: object = None) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"redos-{run}-{name}",
        idempotency_key=f"redos-{run}-{name}",
        tenant="acme",
        campaign_id="redos",
        kind=kind,
        prompt_template=f"Copy for {name}",
        constraints=Constraints(
            json_schema=json.dumps(schema) if schema is not None else None,
            max_chars=None if schema is not None else 200,
        ),
    )


def _evil_value(run: str, length: int) -> GenerationRequest:
    """The offline generator writes the schema's ``const``, which ``^(a+)+$`` then backtracks on."""
    value = "a" * length + "!"
    schema = {
        "type": "object",
        "required": ["v"],
        "properties": {"v": {"type": "string", "pattern": "^(a+)+$", "const": value}},
    }
    return _request(run, f"pattern-{length}", AssetKind.JSON, schema)


def _evil_key(run: str) -> GenerationRequest:
    """A property name the pattern does not match: RE2 says so at once, the asset is delivered."""
    key = "a" * 40 + "!"
    schema = {
        "type": "object",
        "required": [key],
        "properties": {key: {"const": "x"}},
        "patternProperties": {"^(a|a)*$": {"type": "integer"}},
    }
    return _request(run, "pattern-properties", AssetKind.JSON, schema)


def _rebalances(worker: WorkerProcess) -> int:
    return worker.log_tail(100_000).lower().count("rebalanc")


async def _wait(settings: Settings, ids: list[str], timeout: float) -> dict[str, AssetCompleted]:
    async with LineClient(settings) as client:
        return await client.await_completions(ids, timeout=timeout)


def test_backtracking_patterns_complete_and_do_not_hold_up_the_next_request(
    line_settings: Settings, start_worker: Callable[[Settings], WorkerProcess]
) -> None:
    run = uuid.uuid4().hex[:8]
    worker = start_worker(line_settings)
    # The worker is ready (joined its groups) once a first request has gone all the way.
    warmup = _request(run, "warmup", AssetKind.TEXT)
    asyncio.run(submit_requests(line_settings, [warmup]))
    ready = asyncio.run(_wait(line_settings, [warmup.request_id], timeout=120))
    assert warmup.request_id in ready, worker.log_tail()

    hostile = [_evil_value(run, 29), _evil_value(run, 10_000), _evil_key(run)]
    ordinary = _request(run, "ordinary", AssetKind.TEXT)
    rebalances = _rebalances(worker)
    submitted = time.monotonic()
    asyncio.run(submit_requests(line_settings, [*hostile, ordinary]))
    done = asyncio.run(_wait(line_settings, [ordinary.request_id], timeout=PROMPT_BOUND_S))
    assert ordinary.request_id in done, worker.log_tail()
    assert time.monotonic() - submitted < PROMPT_BOUND_S
    completed = done[ordinary.request_id]
    assert completed.status is CompletionStatus.DELIVERED

    ids = [request.request_id for request in hostile]
    outcomes = asyncio.run(_wait(line_settings, ids, timeout=PROMPT_BOUND_S))
    assert set(outcomes) == set(ids), worker.log_tail()
    statuses = {request_id: outcomes[request_id].status for request_id in ids}
    assert list(statuses.values()) == [
        CompletionStatus.REJECTED,
        CompletionStatus.REJECTED,
        CompletionStatus.DELIVERED,
    ]
    for request_id in ids[:2]:
        reasons = " ".join(outcomes[request_id].reasons)
        assert "json.schema" in reasons
        assert "does not match '^(a+)+$'" in reasons, reasons
    assert worker.alive(), worker.log_tail()
    # The loop kept its heartbeats: no group lost the worker while it validated them.
    assert _rebalances(worker) == rebalances, worker.log_tail()
