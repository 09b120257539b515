"""Shared pieces of the integration tests: request mixes and topic readers."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from assetline.client import LineClient
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, Constraints, GenerationRequest, ModelSpec
from streams.kafka import open_topic_reader
from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs

# The offline provider cannot satisfy a regex 'pattern', so this schema gets a REJECTED asset.
UNSATISFIABLE_SCHEMA = json.dumps(
    {
        "type": "object",
        "required": ["sku"],
        "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"}},
    }
)
OFFER_SCHEMA = json.dumps(
    {
        "type": "object",
        "required": ["headline", "discount"],
        "properties": {
            "headline": {"type": "string", "minLength": 3},
            "discount": {"type": "integer", "minimum": 5, "maximum": 50},
        },
    }
)


@dataclass(frozen=True)
class Expected:
    request: GenerationRequest
    status: str


def mixed_requests(count: int, run: str | None = None) -> list[Expected]:
    """A repeatable mix of kinds and outcomes: mostly DELIVERED, some REJECTED and FAILED."""
    run = run or uuid.uuid4().hex[:8]
    out: list[Expected] = []
    for i in range(count):
        variables = {"persona": f"persona-{i % 7}", "locale": ("en-GB", "de-DE", "fr-FR")[i % 3]}
        base = {
            "request_id": f"{run}-{i:05d}",
            "idempotency_key": f"{run}-{i:05d}",
            "tenant": "acme",
            "campaign_id": "it",
            "variables": variables,
        }
        slot = i % 10
        if slot in (0, 1, 2):
            fmt = ("png", "jpeg", "webp")[slot]
            request = GenerationRequest(
                **base,
                kind=AssetKind.IMAGE,
                prompt_template="Banner for ${persona}",
                constraints=Constraints(width=256, height=192, format=fmt),
            )
            out.append(Expected(request, "DELIVERED"))
        elif slot in (3, 4, 5):
            request = GenerationRequest(
                **base,
                kind=AssetKind.TEXT,
                prompt_template="Headline for ${persona} in ${locale}",
                constraints=Constraints(max_chars=120),
            )
            out.append(Expected(request, "DELIVERED"))
        elif slot == 6:
            request = GenerationRequest(
                **base,
                kind=AssetKind.JSON,
                prompt_template="Offer for ${persona}",
                constraints=Constraints(json_schema=OFFER_SCHEMA),
            )
            out.append(Expected(request, "DELIVERED"))
        elif slot == 7:
            request = GenerationRequest(
                **base,
                kind=AssetKind.CODE,
                prompt_template="Greeter for ${persona}",
                constraints=Constraints(language="python"),
            )
            out.append(Expected(request, "DELIVERED"))
        elif slot == 8:
            request = GenerationRequest(
                **base,
                kind=AssetKind.JSON,
                prompt_template="SKU for ${persona}",
                constraints=Constraints(json_schema=UNSATISFIABLE_SCHEMA),
            )
            out.append(Expected(request, "REJECTED"))
        else:
            request = GenerationRequest(
                **base,
                kind=AssetKind.TEXT,
                prompt_template="Copy for ${persona}",
                model=ModelSpec(provider="no-such-provider"),
            )
            out.append(Expected(request, "FAILED"))
    return out


async def read_topic(
    settings: Settings, topic: str, *, min_messages: int, timeout: float
) -> list[object]:
    """Every message of ``topic`` from the beginning, waiting for at least ``min_messages``."""
    consumer = await open_topic_reader(settings, topic)
    try:
        deadline = time.monotonic() + timeout
        messages: list[object] = []
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                messages.extend(records)
            if len(messages) >= min_messages and not batch:
                break
        return messages
    finally:
        await consumer.stop()


async def submit_requests(settings: Settings, requests: Sequence[GenerationRequest]) -> None:
    """Create the line's topics (a worker may not have started yet) and publish ``requests``."""
    await ensure_topics(settings, line_topic_specs(settings))
    async with LineClient(settings) as client:
        await client.submit(requests)


def worker_metric(port: int, name: str, **labels: str) -> float | None:
    """One sample from a worker's /metrics, or None while the page is not up."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def wait_ready(worker: WorkerProcess, timeout: float = 60) -> None:
    """Until the worker logs Faust's "Ready": it has joined its group and recovered its tables,
    so a deadline counted from now is spent on the requests, not on the worker's start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.alive(), worker.log_tail()
        if "[^_Worker]: Ready" in worker.log_tail(400):
            return
        time.sleep(0.2)
    raise AssertionError(f"worker not ready in {timeout}s:\n{worker.log_tail()}")
