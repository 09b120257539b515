"""W3C trace context on a real line: every record a request leads to carries its trace id.

One worker with every stage, a webhook receiver, a review profile, a re-generating profile and
a shadow version on a real broker. A producer's ``traceparent`` is kept end to end; a request
sent without one, or with junk, gets one made by the generate stage and keeps it; a person's
review decision (which carries no trace) joins the request's trace; a poison message's dead
letter keeps its producer's trace; webhook calls carry the trace in their HTTP headers.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from assetline.client import LineClient, await_completions
from assetline.dev.child_worker import WorkerProcess
from assetline.review import NoReviewItemError, new_decision, send_decision
from schemas.records import (
    AssetKind,
    CompletionStatus,
    Constraints,
    GenerationRequest,
    ModelSpec,
    ReviewAction,
)
from streams.codecs import Codecs
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from streams.trace_context import TRACEPARENT, TRACESTATE, TraceContext, extract
from tests.integration.helpers import OFFER_SCHEMA, read_topic
from tests.support.provider_server import ProviderServer, Reply, provider_server

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]
SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
REVIEWED_PROFILE = """\
id: strict
max_attempts: 1
review: true
text: {required: ["Offer ends 31 March."]}
"""
#: Offline models; the image alias mirrors every request to a shadow version (.shadows).
ROUTING = """\
providers:
  main: {type: offline}
  shade: {type: offline}
aliases:
  plain:
    chain: [{provider: main, model: offline, version: offline-1}]
  shadowed:
    chain: [{provider: main, model: offline, version: offline-1}]
    shadow: {provider: shade, model: offline, version: offline-3, share: 1.0}
default_alias: plain
"""
#: A check the offline text never passes, and one re-generation (validate -> .requests).
REGENERATED_PROFILE = """\
id: regen
max_attempts: 2
review: false
text: {required: ["Zebra-Terms-42."]}
"""


@pytest.fixture
def hooks() -> Iterator[ProviderServer]:
    with provider_server() as server:
        server.handle("POST", "/hooks/ok", lambda body: Reply(status=204))
        server.handle("POST", "/hooks/down", lambda body: Reply(status=503))
        yield server


def _traceparent() -> str:
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"


def _request(rid: str, kind: AssetKind = AssetKind.TEXT, **kw: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "request_id": rid,
        "idempotency_key": rid,
        "tenant": "acme",
        "campaign_id": "traced",
        "kind": kind,
        "prompt_template": "Copy for ${p}",
        "variables": {"p": rid},
        "constraints": Constraints(max_chars=200),
    }
    if kind is AssetKind.IMAGE:
        fields["constraints"] = Constraints(width=96, height=64, format="png")
    fields.update(kw)
    return GenerationRequest(**fields)


async def _read_all(settings: Settings, topics: list[str]) -> dict[str, list[Any]]:
    return {t: await read_topic(settings, t, min_messages=0, timeout=8) for t in topics}


def _approve_when_queued(settings: Settings, request_id: str, timeout: float) -> None:
    codecs = Codecs.load()
    decision = new_decision(request_id, ReviewAction.APPROVE, "tracer", "fine")
    deadline = time.monotonic() + timeout
    while True:
        try:
            asyncio.run(send_decision(settings, codecs, decision))
            return
        except NoReviewItemError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_every_record_a_request_leads_to_carries_its_trace_id(
    line_settings: Settings, start_worker: StartWorker, hooks: ProviderServer, tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "strict.yaml").write_text(REVIEWED_PROFILE)
    (profiles / "regen.yaml").write_text(REGENERATED_PROFILE)
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    settings = line_settings.model_copy(
        update={
            "profiles_dir": profiles,
            "routing_file": routing,
            "api_keys": {"webhooks": SecretStr(SECRET)},
            "webhook_allow": ("127.0.0.1",),
            "webhook_schedule_s": (0.0, 0.3),
            "stages": ("generate", "validate", "deliver", "review", "notify"),
        }
    )
    names = TopicNames.with_prefix(settings.topic_prefix)
    run = uuid.uuid4().hex[:8]
    codecs = Codecs.load()

    # Sent with the SDK and the producer's own trace context:
    given = {
        f"{run}-image": _request(
            f"{run}-image",
            AssetKind.IMAGE,
            callback_url=f"{hooks.url}/hooks/down",
            model=ModelSpec(alias="shadowed"),
        ),
        f"{run}-json": _request(
            f"{run}-json", AssetKind.JSON, constraints=Constraints(json_schema=OFFER_SCHEMA)
        ),
        f"{run}-regen": _request(f"{run}-regen", brand_profile_id="regen"),  # then REJECTED
        f"{run}-failed": _request(f"{run}-failed", model=ModelSpec(provider="no-such")),
        f"{run}-held": _request(f"{run}-held", brand_profile_id="strict"),  # waits for a person
    }
    producer = {rid: _traceparent() for rid in given}
    # Sent as bare bytes: no trace headers at all, or hostile ones.
    bare = _request(f"{run}-bare", callback_url=f"{hooks.url}/hooks/ok")
    junk = _request(f"{run}-junk")
    junk_headers = [
        (TRACEPARENT, b"00-" + b"Z" * 32 + b"-" + b"0" * 16 + b"-01"),
        (TRACESTATE, b"evil=" + b"x" * 5000),
    ]
    poison_trace = _traceparent()

    async def submit() -> None:
        await ensure_topics(settings, line_topic_specs(settings))
        async with LineClient(settings) as client:
            await client.submit(given.values(), traceparent_of=lambda r: producer[r.request_id])
            await client.send_raw(
                names.requests, bare.request_id.encode(), codecs.request.encode(bare)
            )
            await client.send_raw(
                names.requests,
                junk.request_id.encode(),
                codecs.request.encode(junk),
                headers=junk_headers,
            )
            await client.send_raw(  # undecodable: dead-lettered by generate
                names.requests,
                f"{run}-poison".encode(),
                b"\xc3\x01not avro at all",
                headers=[(TRACEPARENT, poison_trace.encode())],
            )

    asyncio.run(submit())
    worker = start_worker(settings)
    _approve_when_queued(settings, f"{run}-held", timeout=90)
    ids = [*given, bare.request_id, junk.request_id]
    done = asyncio.run(await_completions(settings, ids, timeout=120))
    assert set(done) == set(ids), worker.log_tail()
    statuses = {rid: events[-1].status for rid, events in done.items()}
    assert statuses[f"{run}-held"] is CompletionStatus.DELIVERED  # approved by the person
    assert statuses[f"{run}-regen"] is CompletionStatus.REJECTED
    assert statuses[f"{run}-failed"] is CompletionStatus.FAILED

    # The webhook to /hooks/down gives up after its schedule: dead-lettered by notify.
    deadline = time.monotonic() + 60
    while len(hooks.requests_to("/hooks/down")) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # the notify dead letter follows the last call

    topics = [
        names.requests,
        names.raw,
        names.approved,
        names.rejected,
        names.review,
        names.review_items,
        names.review_decisions,
        names.completed,
        names.deadletter,
        names.webhooks,
        names.webhook_retry(1),
        names.shadows,
        names.generations,  # keyed <request_id>|<attempt>
    ]
    records = asyncio.run(_read_all(settings, topics))
    traces: dict[str, dict[str, list[TraceContext | None]]] = defaultdict(lambda: defaultdict(list))
    for topic, messages in records.items():
        for message in messages:
            key = message.key.decode() if message.key else ""
            if topic == names.generations:
                key = key.partition("|")[0]
            if key.startswith(run):
                traces[key][topic].append(extract(message.headers))

    seen_topics: set[str] = set()
    line_written = set(topics) - {names.review_decisions}
    for rid in [*given, bare.request_id, junk.request_id]:
        by_topic = traces[rid]
        if rid in producer:
            expected = producer[rid].split("-")[1]
        else:
            raw = by_topic[names.raw]
            assert raw, f"{rid}: nothing on .raw"
            assert raw[0] is not None, f"{rid}: .raw without a trace"
            expected = raw[0].trace_id  # made by generate
        for topic, contexts in by_topic.items():
            if topic == names.review_decisions or (topic == names.requests and rid not in producer):
                continue  # written by the test (the person, or a producer without a trace)
            seen_topics.add(topic)
            for context in contexts:
                assert context is not None, f"{rid} on {topic}: no valid traceparent"
                assert context.trace_id == expected, f"{rid} on {topic}: another trace"
                if rid in producer:
                    assert context.traceparent != producer[rid] or topic == names.requests
    # Every kind of record the line writes was seen, each carrying its request's trace.
    assert seen_topics == line_written, sorted(line_written - seen_topics)

    bare_trace = traces[bare.request_id][names.raw][0]
    junk_trace = traces[junk.request_id][names.raw][0]
    assert bare_trace is not None
    assert junk_trace is not None
    assert bare_trace.trace_id != junk_trace.trace_id
    assert junk_trace.tracestate == ""  # the junk traceparent's state went with it
    # Validate's re-generation went back to .requests with the trace: attempt 2.
    assert done[f"{run}-regen"][-1].attempt == 2
    assert len(traces[f"{run}-regen"][names.requests]) == 2
    # The person's decision carried no trace; the approval the review stage wrote joins the
    # request's (checked above with the rest of .approved).
    assert traces[f"{run}-held"][names.review_decisions] == [None]
    assert traces[f"{run}-held"][names.approved]

    # The webhook calls (HTTP) carry the request's trace too, for receivers to join it.
    called = [extract([(TRACEPARENT, c.headers["traceparent"].encode())]) for c in
              hooks.requests_to("/hooks/ok") + hooks.requests_to("/hooks/down")]  # fmt: skip
    assert len(called) >= 3
    assert {c.trace_id if c else None for c in called} == {
        bare_trace.trace_id,
        producer[f"{run}-image"].split("-")[1],
    }

    poison = [
        extract(m.headers) for m in records[names.deadletter] if m.key == f"{run}-poison".encode()
    ]
    assert [c.trace_id if c else None for c in poison] == [poison_trace.split("-")[1]]
