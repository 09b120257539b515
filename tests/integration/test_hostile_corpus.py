"""Every hostile request of the corpus ends in a completion or a coded dead letter (real broker).

The corpus (``tests/corpus/hostile_requests.json``) is what a hostile producer can put on
``.requests``: regexes that backtrack forever, size bombs, requests near the 1 MB record limit,
forged attempts, absurd image sizes, traversal names, injection attempts, broken bytes. One worker
takes all of them with ordinary requests in between; the test proves that each hostile request
gets exactly what its entry expects, that every ordinary request is still delivered (nothing is
frozen or lost behind a hostile one), and that the worker is still running at the end.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from assetline.client import LineClient
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetCompleted, GenerationRequest
from streams.codecs import Codecs
from streams.dead_letters import header_map
from streams.kafka import open_topic_reader
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).parents[1] / "corpus" / "hostile_requests.json"
DEADLINE_S = 240.0
CANARY_BOUND_S = 90.0  # an ordinary request sent after the whole corpus; today's line takes ~1 s

StartWorker = Callable[[Settings], WorkerProcess]


@dataclass
class Case:
    name: str
    request_id: str
    value: bytes
    expect: str
    status: list[str] = field(default_factory=list)
    code: str | None = None
    refused_at_produce: bool = False


def _expand(value: Any) -> Any:
    """The corpus's short forms for values too big to write out."""
    if isinstance(value, str) and value.startswith("@nested:"):
        depth = int(value.split(":", 1)[1])
        return '{"items":' * depth + "{}" + "}" * depth
    if isinstance(value, str) and value.startswith("@list:"):
        _, count, text = value.split(":", 2)
        return [text] * int(count)
    if isinstance(value, str) and value.startswith("@repeat:"):
        _, text, count = value.split(":", 2)
        return text * int(count)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    return value


def _build(entry: dict[str, Any], run: str, codecs: Codecs) -> Case:
    suffix = _expand(entry.get("request_id_suffix", ""))
    request_id = f"{run}-{entry['name']}{suffix}"
    fields: dict[str, Any] = {
        "request_id": request_id,
        "idempotency_key": request_id,
        "tenant": "acme",
        "campaign_id": "hostile",
        "kind": "TEXT",
        "prompt_template": "Headline for ${persona}",
        "variables": {"persona": "p"},
    }
    fields.update(_expand(entry.get("request", {})))
    if fields.get("prior_cost") == "NaN":
        fields["prior_cost"] = math.nan
    request = GenerationRequest.model_validate(fields)
    value = codecs.request.encode(request)
    if "pad_bytes" in entry:
        target = int(entry["pad_bytes"])
        pad = max(0, target - len(value))
        while len(value) != target:  # the varint length prefix moves with the pad: converge
            variables = {**request.variables, "pad": "x" * pad}
            value = codecs.request.encode(request.model_copy(update={"variables": variables}))
            pad += target - len(value)
    if entry.get("mutate") == "invalid-utf8":
        value = value.replace(b"@@MARK@@", b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8")
    return Case(
        name=entry["name"],
        request_id=request_id,
        value=value,
        expect=entry["expect"],
        status=list(entry.get("status", [])),
        code=entry.get("code"),
    )


def _canary(run: str, i: int) -> GenerationRequest:
    rid = f"{run}-canary-{i}"
    return GenerationRequest(
        request_id=rid,
        idempotency_key=rid,
        tenant="acme",
        campaign_id="hostile",
        kind="TEXT",
        prompt_template="Calm headline ${n}",
        variables={"n": str(i)},
    )


@dataclass
class Outcomes:
    completions: dict[str, list[AssetCompleted]] = field(default_factory=dict)
    dead: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    canary_done_at: float | None = None


async def _collect(
    settings: Settings, wanted: set[str], last_canary: str, sent_at: float, codecs: Codecs
) -> Outcomes:
    names = TopicNames.with_prefix(settings.topic_prefix)
    completed = await open_topic_reader(settings.kafka_bootstrap, names.completed)
    deadletter = await open_topic_reader(settings.kafka_bootstrap, names.deadletter)
    out = Outcomes()
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            for batch in (await completed.getmany(timeout_ms=300)).values():
                for message in batch:
                    done = codecs.completed.decode(message.value)
                    out.completions.setdefault(done.request_id, []).append(done)
                    if done.request_id == last_canary and out.canary_done_at is None:
                        out.canary_done_at = time.monotonic() - sent_at
            for batch in (await deadletter.getmany(timeout_ms=300)).values():
                for message in batch:
                    key = (message.key or b"").decode("utf-8", "replace")
                    out.dead.setdefault(key, []).append(header_map(message.headers))
            if wanted <= set(out.completions) | set(out.dead):
                await asyncio.sleep(3)  # a late duplicate would show up here
                for batch in (await completed.getmany(timeout_ms=1000)).values():
                    for message in batch:
                        done = codecs.completed.decode(message.value)
                        out.completions.setdefault(done.request_id, []).append(done)
                break
    finally:
        await completed.stop()
        await deadletter.stop()
    return out


def _problems(case: Case, out: Outcomes) -> list[str]:
    done = out.completions.get(case.request_id, [])
    dead = out.dead.get(case.request_id, [])
    if case.refused_at_produce:
        return [] if case.expect in ("deadletter", "either") else ["refused by the broker"]
    if len(done) > 1:
        return [f"{len(done)} completions"]
    if not done and not dead:
        return ["neither a completion nor a dead letter"]
    problems: list[str] = []
    if done:
        c = done[0]
        if case.expect == "deadletter":
            problems.append(f"completed {c.status.value} {c.reasons} instead of a dead letter")
        if case.status and c.status.value not in case.status:
            problems.append(f"status {c.status.value} not in {case.status}: {c.reasons}")
        if c.status.value not in ("DELIVERED", "FALLBACK") and not c.reasons:
            problems.append(f"{c.status.value} without a reason")
        if case.code and not any(case.code in r for r in c.reasons):
            problems.append(f"no reason has {case.code!r}: {c.reasons}")
    else:
        codes = [h.get("assetline.dlq.error.code", "") for h in dead]
        if case.expect == "completion":
            problems.append(f"dead-lettered {codes} instead of completed")
        if not all(codes):
            problems.append("a dead letter without an error code")
        if case.code and case.code not in codes:
            problems.append(f"dead letter codes {codes} lack {case.code!r}")
    return problems


def test_every_hostile_request_gets_a_completion_or_a_coded_dead_letter(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    corpus = json.loads(CORPUS.read_text(encoding="utf-8"))["cases"]
    assert len(corpus) >= 30
    run = uuid.uuid4().hex[:8]
    codecs = Codecs.load()
    cases = [_build(entry, run, codecs) for entry in corpus]
    canaries = [_canary(run, i) for i in range(len(cases) // 5 + 1)]
    last = _canary(run, 999)
    names = TopicNames.with_prefix(line_settings.topic_prefix)
    worker = start_worker(line_settings)

    async def send_all() -> float:
        await ensure_topics(line_settings.kafka_bootstrap, line_topic_specs(line_settings))
        async with LineClient(line_settings) as client:
            for i, case in enumerate(cases):
                try:
                    await client.send_raw(names.requests, case.request_id.encode(), case.value)
                except MessageSizeTooLargeError:
                    case.refused_at_produce = True
                if i % 5 == 0:
                    await client.submit_one(canaries[i // 5])
            await client.submit_one(last)
        return time.monotonic()

    sent_at = asyncio.run(send_all())
    wanted = {c.request_id for c in cases if not c.refused_at_produce}
    wanted |= {c.request_id for c in canaries} | {last.request_id}
    out = asyncio.run(_collect(line_settings, wanted, last.request_id, sent_at, codecs))

    report = {c.name: p for c in cases if (p := _problems(c, out))}
    for canary in [*canaries, last]:
        got = out.completions.get(canary.request_id, [])
        if [c.status.value for c in got] != ["DELIVERED"]:
            report[canary.request_id] = [f"ordinary request got {[c.status for c in got]}"]
    assert not report, (
        json.dumps(report, indent=1, ensure_ascii=False)[:6000]
        + f"\nworker log:\n{worker.log_tail()}"
    )
    assert out.canary_done_at is not None
    assert out.canary_done_at < CANARY_BOUND_S, f"the line froze for {out.canary_done_at:.0f} s"
    assert worker.alive(), f"the worker stopped:\n{worker.log_tail()}"
