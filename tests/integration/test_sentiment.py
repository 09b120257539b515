"""Copy through the whole line on a real broker: completions, sidecars and XMP carry sentiment."""

from __future__ import annotations

import asyncio
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from PIL import Image
from pydantic import SecretStr

from agents.deliver.metadata.xmp import NS_ASSETLINE
from agents.validate.checks.sentiment import label_for, score_text
from agents.validate.judge import SENTIMENT_VERDICT_SCHEMA
from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, Constraints, GenerationRequest, ModelSpec
from streams.settings import Settings
from tests.integration.helpers import submit_requests
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    provider_server,
)

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]


def test_delivered_copy_carries_its_sentiment_on_the_completion_and_in_the_sidecar(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    run = uuid.uuid4().hex[:8]
    requests = [
        GenerationRequest(
            request_id=f"{run}-{i}",
            idempotency_key=f"{run}-{i}",
            tenant="acme",
            campaign_id="it",
            kind=AssetKind.TEXT,
            prompt_template="Headline for ${persona}",
            variables={"persona": f"persona-{i}"},
            constraints=Constraints(max_chars=200),
        )
        for i in range(3)
    ]
    asyncio.run(submit_requests(line_settings, requests))
    worker = start_worker(line_settings)
    ids = [r.request_id for r in requests]
    completions = asyncio.run(await_completions(line_settings, ids, timeout=120))
    assert set(completions) == set(ids), worker.log_tail()
    for request_id in ids:
        (done,) = completions[request_id]
        assert done.status.value == "DELIVERED", done.reasons
        assert done.location is not None
        path = Path(unquote(urlparse(done.location).path))
        # The score on the completion is the one the delivered bytes get.
        expected = score_text(path.read_text(encoding="utf-8"))
        assert done.sentiment == expected.score
        assert done.sentiment_label == expected.label == label_for(expected.score)
        sidecar = json.loads(path.with_name(path.name + ".json").read_text(encoding="utf-8"))
        assert sidecar["sentiment"] == f"{expected.score:.4f}"
        assert sidecar["sentiment_label"] == expected.label


def test_an_image_made_from_copy_carries_the_copys_sentiment_in_its_xmp_and_completion(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    run = uuid.uuid4().hex[:8]
    headline = "Sunny days ahead: our happiest summer sale!"
    variables = [{"headline": headline, "persona": "runner"}, {"persona": "runner"}]
    requests = [
        GenerationRequest(
            request_id=f"{run}-img-{i}",
            idempotency_key=f"{run}-img-{i}",
            tenant="acme",
            campaign_id="it",
            kind=AssetKind.IMAGE,
            prompt_template="A bright poster for ${persona}",
            variables=chosen,
            constraints=Constraints(width=96, height=64, format="png"),
        )
        for i, chosen in enumerate(variables)
    ]
    asyncio.run(submit_requests(line_settings, requests))
    worker = start_worker(line_settings)
    ids = [r.request_id for r in requests]
    completions = asyncio.run(await_completions(line_settings, ids, timeout=120))
    assert set(completions) == set(ids), worker.log_tail()
    expected = score_text(headline)
    xmp_fields: dict[str, dict[str, str]] = {}
    for request_id in ids:
        (done,) = completions[request_id]
        assert done.status.value == "DELIVERED", done.reasons
        assert done.location is not None
        path = Path(unquote(urlparse(done.location).path))
        with Image.open(path) as image:
            packet = image.info["XML:com.adobe.xmp"]
        prefix = f"{{{NS_ASSETLINE}}}"
        xmp_fields[request_id] = {
            el.tag.removeprefix(prefix): el.text or ""
            for el in ET.fromstring(packet).iter()
            if el.tag.startswith(prefix)
        }
        assert xmp_fields[request_id]["request_id"] == request_id
    with_copy, without = (completions[request_id][0] for request_id in ids)
    assert (with_copy.sentiment, with_copy.sentiment_label) == (expected.score, "positive")
    assert xmp_fields[ids[0]]["sentiment"] == f"{expected.score:.4f}"
    assert xmp_fields[ids[0]]["sentiment_label"] == "positive"
    assert (without.sentiment, without.sentiment_label) == (None, None)
    assert "sentiment" not in xmp_fields[ids[1]]


ROUTING = """
providers:
  primary: {{type: openai, base_url: "{url}/v1", api_key: primary}}
aliases:
  copy:
    chain: [{{provider: primary, model: gpt-4o-mini, timeout_s: 5, max_retries: 0}}]
default_alias: copy
"""

PROFILE = """
id: acme
max_attempts: 1
review: false
text: {min_sentiment: 0.3}
judge:
  provider: primary
  model: judge-mini
  rubric: "Friendly marketing copy?"
  kinds: [TEXT]
  sentiment: true
"""

#: Copy VADER reads as negative: the judge (below) says how GLOOMY reads instead, and gives
#: no sentiment for WINTRY, so the lexicon's score counts there.
GLOOMY = "Tired of slow internet that ruins every call? Stop wasting money."
WINTRY = "Another awful, broken winter of terrible delays."


def _chat(body: Any) -> Reply:
    """The copy model writes GLOOMY for 'cheerful', else WINTRY; the judge answers as above."""
    prompt = json.dumps(body["messages"])
    if body["model"] != "judge-mini":
        copy = GLOOMY if "cheerful" in prompt else WINTRY
        return Reply(json=openai_chat_response(copy, model=body["model"]))
    verdict: dict[str, Any] = {"verdict": "pass", "score": 0.9, "reasons": ["friendly"]}
    if "winter" not in prompt:
        verdict["sentiment"] = 0.8
    return Reply(json=openai_chat_response(json.dumps(verdict), model="judge-mini"))


@pytest.fixture
def judge_server() -> Iterator[ProviderServer]:
    with provider_server() as server:
        yield server


def test_the_judges_sentiment_is_stamped_and_the_lexicon_stands_in_when_it_gives_none(
    line_settings: Settings, start_worker: StartWorker, judge_server: ProviderServer, tmp_path: Path
) -> None:
    judge_server.handle("POST", "/v1/chat/completions", _chat)
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.format(url=judge_server.url))
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "acme.yaml").write_text(PROFILE)
    settings = line_settings.model_copy(
        update={
            "routing_file": routing,
            "profiles_dir": profiles,
            "api_keys": {"primary": SecretStr("sk-" + uuid.uuid4().hex)},
        }
    )
    run = uuid.uuid4().hex[:8]
    requests = [
        GenerationRequest(
            request_id=f"{run}-{persona}",
            idempotency_key=f"{run}-{persona}",
            tenant="acme",
            campaign_id="it",
            kind=AssetKind.TEXT,
            prompt_template="Headline for ${persona}",
            variables={"persona": persona},
            model=ModelSpec(alias="copy"),
            brand_profile_id="acme",
        )
        for persona in ("cheerful", "silent")
    ]
    asyncio.run(submit_requests(settings, requests))
    worker = start_worker(settings)
    ids = [r.request_id for r in requests]
    completions = asyncio.run(await_completions(settings, ids, timeout=120))
    assert set(completions) == set(ids), worker.log_tail()
    assert score_text(GLOOMY).score < 0.3  # the lexicon alone would have rejected it
    lexicon = score_text(WINTRY)

    (judged,) = completions[ids[0]]
    assert judged.status.value == "DELIVERED", judged.reasons
    assert (judged.sentiment, judged.sentiment_label) == (0.8, "positive")
    assert judged.location is not None
    path = Path(unquote(urlparse(judged.location).path))
    sidecar = json.loads(path.with_name(path.name + ".json").read_text(encoding="utf-8"))
    assert (sidecar["sentiment"], sidecar["sentiment_label"]) == ("0.8000", "positive")

    (fallen_back,) = completions[ids[1]]
    assert fallen_back.status.value == "REJECTED"
    assert (fallen_back.sentiment, fallen_back.sentiment_label) == (lexicon.score, "negative")
    (reason,) = [r for r in fallen_back.reasons if "sentiment" in r]
    assert "below min_sentiment +0.30" in reason
    assert "the lexicon's score counts as the judge gave none" in reason

    judge_calls = [
        seen.json
        for seen in judge_server.requests_to("/v1/chat/completions")
        if isinstance(seen.json, dict) and seen.json["model"] == "judge-mini"
    ]
    assert len(judge_calls) == 2
    for body in judge_calls:
        schema = body["response_format"]["json_schema"]
        assert (schema["schema"], schema["strict"]) == (SENTIMENT_VERDICT_SCHEMA, True)
