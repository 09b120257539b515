"""The validation gateway on a real broker, against a real OpenAI-compatible HTTP server.

A campaign under the ``acme`` brand profile (palette, prohibited terms, required disclaimer,
an AI judge). Some outputs violate the policy once and are repaired by re-generation with
feedback; some violate it every time and reach human review, where one is approved and one
rejected after a worker restart; one request names an unknown profile. Every request must end
with exactly one completion event.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import pytest
from click.testing import CliRunner
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from agents.inference.prompt import FEEDBACK_HEADER
from assetline.cli import cli
from assetline.client import LineClient, await_completions
from assetline.dev.child_worker import WorkerProcess
from assetline.review import load_items
from schemas.records import (
    AssetKind,
    CompletionStatus,
    Constraints,
    GenerationRequest,
    ModelSpec,
    ReviewAction,
    ReviewDecision,
    ReviewItem,
    ReviewStatus,
)
from streams.codecs import Codecs
from streams.dead_letters import header_map
from streams.settings import Settings, settings_env
from streams.topics import TopicNames
from tests.integration.helpers import read_topic, submit_requests
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    provider_server,
)

pytestmark = pytest.mark.integration

API_KEY = "sk-gateway-" + uuid.uuid4().hex

ROUTING = """
providers:
  primary:
    type: openai
    base_url: {url}/v1
    api_key: primary
aliases:
  copy:
    chain:
      - {{provider: primary, model: gpt-4o-mini, timeout_s: 5, max_retries: 1,
          price: {{input_per_1k: 0.15, output_per_1k: 0.6}}}}
  hero:
    chain:
      - {{provider: primary, model: gpt-image-1, timeout_s: 5, max_retries: 1,
          price: {{per_image: 0.04}}}}
default_alias: copy
"""

PROFILE = """
id: acme
name: ACME Corp
copyright: "(c) 2026 ACME Corp"
max_attempts: 3
review: true
palette:
  colors: ["#E4002B", "#FFFFFF"]
  max_delta_e: 10
  min_share: 0.8
text:
  prohibited: ["free", "guaranteed"]
  required: ["Terms apply."]
judge:
  provider: primary
  model: judge-mini
  rubric: "Is this on-brand, friendly marketing copy?"
  kinds: [TEXT]
  price: {input_per_1k: 0.15, output_per_1k: 0.6}
"""

BRAND_RED = (228, 0, 43)
GREEN = (20, 170, 60)


def png(colour: tuple[int, int, int], side: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class Studio:
    """Plays the model: a persona's name says how it misbehaves.

    ``clean`` is fine at once; ``fixable`` breaks the policy until the prompt carries
    validation feedback; ``stubborn`` breaks it every time.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.prompts: list[str] = []
        self.judged = 0

    def chat(self, body: Any) -> Reply:
        prompt = body["messages"][-1]["content"]
        prompt = prompt if isinstance(prompt, str) else json.dumps(prompt)
        if body["model"] == "judge-mini":
            with self.lock:
                self.judged += 1
            verdict = {"verdict": "pass", "score": 0.9, "reasons": ["friendly"]}
            return Reply(json=openai_chat_response(json.dumps(verdict), model="judge-mini"))
        with self.lock:
            self.prompts.append(prompt)
        if "stubborn" in prompt or ("fixable" in prompt and FEEDBACK_HEADER not in prompt):
            text = "Get your trail shoes fr33 today. Terms apply."
        else:
            text = "Trail shoes that grip every step. Terms apply."
        return Reply(json=openai_chat_response(text, model=body["model"]))

    def image(self, body: Any) -> Reply:
        prompt = body["prompt"]
        with self.lock:
            self.prompts.append(prompt)
        side = int(body["size"].split("x")[0])
        bad = "stubborn" in prompt or ("fixable" in prompt and FEEDBACK_HEADER not in prompt)
        image = png(GREEN if bad else BRAND_RED, side)
        return Reply(json={"created": 1, "data": [{"b64_json": image}]})


@pytest.fixture
def studio_server() -> Iterator[ProviderServer]:
    with provider_server() as server:
        yield server


def _request(run: str, name: str, kind: AssetKind, profile: str = "acme") -> GenerationRequest:
    image = kind is AssetKind.IMAGE
    return GenerationRequest(
        request_id=f"gw-{run}-{name}",
        idempotency_key=f"gw-{run}-{name}",
        tenant="acme",
        campaign_id="spring",
        kind=kind,
        prompt_template="Hero image for ${persona}" if image else "Headline for ${persona}",
        variables={"persona": name},
        model=ModelSpec(alias="hero" if image else "copy"),
        constraints=Constraints(width=64, height=64, format="png") if image else Constraints(),
        brand_profile_id=profile,
    )


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _pending(settings: Settings, want: set[str], timeout: float) -> dict[str, ReviewItem]:
    deadline = time.monotonic() + timeout
    items: dict[str, ReviewItem] = {}
    while time.monotonic() < deadline:
        items = asyncio.run(load_items(settings, Codecs.load()))
        if want.issubset(items):
            break
        time.sleep(0.5)
    return items


def test_campaign_is_repaired_reviewed_and_completed_once_each(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    studio_server: ProviderServer,
    tmp_path: Path,
) -> None:
    studio = Studio()
    studio_server.handle("POST", "/v1/chat/completions", studio.chat)
    studio_server.handle("POST", "/v1/images/generations", studio.image)
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.format(url=studio_server.url))
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "acme.yaml").write_text(PROFILE)
    settings = line_settings.model_copy(
        update={
            "routing_file": routing,
            "profiles_dir": profiles,
            "api_keys": {"primary": SecretStr(API_KEY)},
        }
    )
    run = uuid.uuid4().hex[:8]
    plan = {
        "clean-copy": AssetKind.TEXT,
        "clean-hero": AssetKind.IMAGE,
        "fixable-copy-1": AssetKind.TEXT,
        "fixable-copy-2": AssetKind.TEXT,
        "fixable-hero": AssetKind.IMAGE,
        "stubborn-copy": AssetKind.TEXT,
        "stubborn-hero": AssetKind.IMAGE,
    }
    requests = [_request(run, name, kind) for name, kind in plan.items()]
    requests.append(_request(run, "unknown-profile", AssetKind.TEXT, profile="globex"))
    ids = {r.request_id.removeprefix(f"gw-{run}-"): r.request_id for r in requests}
    asyncio.run(submit_requests(settings, requests))
    worker = start_worker(settings)

    # Everything but the two stubborn ones completes on its own.
    automatic = [rid for name, rid in ids.items() if not name.startswith("stubborn")]
    done = asyncio.run(await_completions(settings, automatic, timeout=120))
    assert set(done) == set(automatic), worker.log_tail()

    stubborn = {ids["stubborn-copy"], ids["stubborn-hero"]}
    items = _pending(settings, stubborn, timeout=60)
    assert stubborn.issubset(items), worker.log_tail()
    for rid in stubborn:
        item = items[rid]
        assert item.status is ReviewStatus.PENDING
        assert item.asset.raw.request.attempt == 3  # every attempt was used first
        assert len(item.asset.raw.request.feedback) == 2
    failed_codes = {c.code for c in items[ids["stubborn-hero"]].asset.report.checks if not c.passed}
    assert failed_codes == {"palette.brand"}
    failed_codes = {c.code for c in items[ids["stubborn-copy"]].asset.report.checks if not c.passed}
    assert failed_codes == {"text.prohibited"}

    metrics = _scrape(settings.web_port)
    dispositions = {
        d: metrics.get(
            (
                "assetline_validation_dispositions_total",
                (("campaign", "spring"), ("disposition", d)),
            )
        )
        for d in ("APPROVED", "REGENERATE", "REVIEW", "REJECTED")
    }
    # 2 clean + 3 fixed; 3 fixable + 2x2 stubborn retries; 2 stubborn; the unknown profile
    assert dispositions == {"APPROVED": 5, "REGENERATE": 7, "REVIEW": 2, "REJECTED": 1}
    assert (
        metrics[("assetline_checks_total", (("code", "palette.brand"), ("outcome", "failed")))] == 4
    )
    assert (
        metrics[("assetline_checks_total", (("code", "text.prohibited"), ("outcome", "failed")))]
        == 5
    )
    assert metrics[("assetline_delivered_attempts_count", ())] == 5
    assert metrics[("assetline_delivered_attempts_sum", ())] == 1 + 1 + 2 + 2 + 2
    assert metrics[("assetline_review_pending", ())] == 2
    assert (
        metrics[
            (
                "assetline_judge_calls_total",
                (("code", "judge.verdict"), ("model", "judge-mini"), ("provider", "primary")),
            )
        ]
        == 3
    )

    # Pending items survive a restart: the new worker rebuilds the table from its changelog.
    assert worker.stop(timeout=30) == 0
    worker = start_worker(settings)
    deadline = time.monotonic() + 60
    pending = None
    while time.monotonic() < deadline and pending != 2:
        try:
            pending = _scrape(settings.web_port).get(("assetline_review_pending", ()))
        except httpx.HTTPError:
            pending = None
        time.sleep(0.5)
    assert pending == 2, worker.log_tail()

    env = settings_env(settings)
    runner = CliRunner()
    listed = runner.invoke(cli, ["review", "list"], env=env, catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    assert {json.loads(line)["request_id"] for line in listed.stdout.splitlines()} == stubborn
    approved = runner.invoke(
        cli,
        ["review", "approve", ids["stubborn-hero"], "--reviewer", "ana", "--note", "close enough"],
        env=env,
        catch_exceptions=False,
    )
    assert approved.exit_code == 0, approved.output
    rejected = runner.invoke(
        cli,
        ["review", "reject", ids["stubborn-copy"], "--reviewer", "bo", "--note", "says free"],
        env=env,
        catch_exceptions=False,
    )
    assert rejected.exit_code == 0, rejected.output
    # A decision about something that is not in review is dead-lettered with the reason.
    stray = ReviewDecision(
        decision_id="stray", request_id="gw-nothing", action=ReviewAction.APPROVE, reviewer="x"
    )
    names = TopicNames.with_prefix(settings.topic_prefix)

    async def send_stray() -> None:
        async with LineClient(settings) as client:
            value = Codecs.load().review_decision.encode(stray)
            await client.send_raw(names.review_decisions, b"gw-nothing", value)

    asyncio.run(send_stray())

    every = list(ids.values())
    completions = asyncio.run(await_completions(settings, every, timeout=90))
    assert set(completions) == set(every), worker.log_tail()
    time.sleep(2)  # a late duplicate would arrive now
    completions = asyncio.run(await_completions(settings, every, timeout=10))
    assert {rid: len(c) for rid, c in completions.items()} == {rid: 1 for rid in every}
    final = {name: completions[rid][0] for name, rid in ids.items()}

    for name in ("clean-copy", "clean-hero"):
        assert (final[name].status, final[name].attempt) == (CompletionStatus.DELIVERED, 1)
    for name in ("fixable-copy-1", "fixable-copy-2", "fixable-hero"):
        assert (final[name].status, final[name].attempt) == (CompletionStatus.DELIVERED, 2)
        generations = [a for a in final[name].attempts if a.purpose == "generate"]
        assert len(generations) == 1  # this attempt's call; earlier ones are in prior_cost
        assert final[name].cost > generations[0].cost  # attempt 1 was paid for too
    assert final["fixable-copy-1"].attempts[-1].purpose == "judge"

    hero = final["stubborn-hero"]
    assert (hero.status, hero.attempt) == (CompletionStatus.DELIVERED, 3)
    assert hero.review is not None
    assert (hero.review.reviewer, hero.review.note) == (
        "ana",
        "close enough",
    )
    assert hero.location is not None
    # Delivered labelled: brand copyright, AI disclosure and the reviewer, in the file itself.
    with Image.open(Path(unquote(urlparse(hero.location).path))) as delivered:
        xmp = delivered.text["XML:com.adobe.xmp"]
        assert delivered.text["Copyright"] == "(c) 2026 ACME Corp"
    assert "digitalsourcetype/trainedAlgorithmicMedia" in xmp
    assert "approved by ana" in xmp
    copy = final["stubborn-copy"]
    assert copy.status is CompletionStatus.REJECTED
    assert copy.reasons[0] == "review.rejected: by bo: says free"
    assert any(r.startswith("text.prohibited") for r in copy.reasons)
    unknown = final["unknown-profile"]
    assert unknown.status is CompletionStatus.FAILED
    assert unknown.reasons[0].startswith("policy.unknown_profile")

    # The model saw the feedback on its second attempt.
    fixed_prompts = [p for p in studio.prompts if "fixable-copy-1" in p]
    assert len(fixed_prompts) == 2
    assert FEEDBACK_HEADER not in fixed_prompts[0]
    assert FEEDBACK_HEADER in fixed_prompts[1]
    assert "text.prohibited" in fixed_prompts[1]
    assert studio.judged == 3  # only texts that passed every rule: clean-copy, fixable-copy-*

    dead = asyncio.run(read_topic(settings, names.deadletter, min_messages=1, timeout=10))
    reasons = [header_map(m.headers) for m in dead]  # type: ignore[attr-defined]
    assert any(h.get("assetline.dlq.error.code") == "review.not_pending" for h in reasons), reasons
    items = asyncio.run(load_items(settings, Codecs.load()))
    assert {items[rid].status for rid in stubborn} == {ReviewStatus.APPROVED, ReviewStatus.REJECTED}
    after = _scrape(settings.web_port)
    assert after[("assetline_review_pending", ())] == 0
    assert after[("assetline_review_decisions_total", (("action", "APPROVE"),))] == 1
    assert after[("assetline_review_decisions_total", (("action", "REJECT"),))] == 1
    assert after[("assetline_delivered_attempts_sum", ())] == 3  # the approved stubborn hero
    assert API_KEY not in worker.log_tail(10_000)
