"""judge.sentiment: the judge is asked how positive copy reads, in a schema strict endpoints take.

Against a real local server answering as OpenAI's chat completions API.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from agents.inference.providers.openai import OpenAIConfig, OpenAIProvider
from agents.policy.rules import JudgePolicy
from agents.validate.checks._base import Subject
from agents.validate.judge import (
    SENTIMENT_VERDICT_SCHEMA,
    VERDICT_SCHEMA,
    JudgedSentiment,
    JudgeOutcome,
    build_call,
    judged_sentiment,
    run_judge,
)
from schemas.records import AssetKind, CheckResult, GenerationRequest
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    png_bytes,
    provider_server,
)

CHAT = "/v1/chat/completions"
COPY = b"Run further with Acme trail shoes."


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with provider_server() as started:
        yield started


def _policy(**overrides: Any) -> JudgePolicy:
    fields: dict[str, Any] = {
        "provider": "judge",
        "model": "gpt-4o-2024-08-06",
        "rubric": "Upbeat, on brand.",
        "sentiment": True,
    }
    return JudgePolicy(**{**fields, **overrides})


def _subject(kind: AssetKind = AssetKind.TEXT) -> Subject:
    request = GenerationRequest(
        request_id="req-9",
        idempotency_key="idem-9",
        tenant="acme",
        campaign_id="spring",
        kind=kind,
        prompt_template="Write a headline",
    )
    if kind is AssetKind.IMAGE:
        return Subject(request=request, data=png_bytes(), media_type="image/png")
    return Subject(request=request, data=COPY, media_type="text/plain")


def _ask(server: ProviderServer, answer: dict[str, Any], **policy: Any) -> JudgeOutcome:
    server.script("POST", CHAT, [Reply(json=openai_chat_response(json.dumps(answer)))])

    async def main() -> JudgeOutcome:
        provider = OpenAIProvider("judge", OpenAIConfig(base_url=server.url + "/v1"), None)
        try:
            return await run_judge(_subject(), _policy(**policy), provider)
        finally:
            await provider.aclose()

    return asyncio.run(main())


def _sent_schema(server: ProviderServer) -> Any:
    (seen,) = server.requests_to(CHAT)
    assert isinstance(seen.json, dict)
    return seen.json["response_format"]["json_schema"]["schema"]


def test_the_sentiment_schema_requires_every_property_as_strict_endpoints_want() -> None:
    schema = SENTIMENT_VERDICT_SCHEMA
    assert schema["additionalProperties"] is False
    assert (
        set(schema["required"])
        == set(schema["properties"])
        == {
            "verdict",
            "score",
            "reasons",
            "sentiment",
        }
    )
    assert schema["properties"]["sentiment"] == {"type": "number", "minimum": -1, "maximum": 1}
    assert "sentiment" not in VERDICT_SCHEMA["properties"]  # judges not asked are unchanged


def test_only_a_text_assets_judge_is_asked_for_sentiment() -> None:
    text = build_call(_subject(), _policy())
    assert json.loads(text.request.constraints.json_schema or "") == SENTIMENT_VERDICT_SCHEMA
    assert '"sentiment"' in text.prompt
    image = build_call(_subject(AssetKind.IMAGE), _policy())
    assert json.loads(image.request.constraints.json_schema or "") == VERDICT_SCHEMA
    assert '"sentiment"' not in image.prompt
    plain = build_call(_subject(), _policy(sentiment=False))
    assert json.loads(plain.request.constraints.json_schema or "") == VERDICT_SCHEMA
    assert '"sentiment"' not in plain.prompt


def test_judge_sentiment_needs_a_judge_of_text() -> None:
    with pytest.raises(ValidationError, match="must include TEXT"):
        _policy(kinds=[AssetKind.IMAGE])
    assert _policy(kinds=[AssetKind.IMAGE], sentiment=False).sentiment is False
    assert JudgePolicy(provider="j", model="m", rubric="r").sentiment is False  # the default


def test_the_judges_sentiment_is_read_from_its_verdict(server: ProviderServer) -> None:
    answer = {"verdict": "pass", "score": 0.9, "reasons": ["upbeat"], "sentiment": 0.61234}
    result = _ask(server, answer).result
    assert _sent_schema(server) == SENTIMENT_VERDICT_SCHEMA
    assert (result.code, result.passed, result.measured) == ("judge.verdict", True, "0.90")
    assert result.message.startswith("judge sentiment +0.6123; judge passed the asset")
    assert judged_sentiment(result) == JudgedSentiment(0.6123)


def test_a_failing_verdict_still_gives_its_sentiment(server: ProviderServer) -> None:
    answer = {"verdict": "fail", "score": 0.2, "reasons": ["too grim"], "sentiment": -1}
    result = _ask(server, answer).result
    assert (result.passed, result.repairable) == (False, True)
    assert judged_sentiment(result) == JudgedSentiment(-1.0)


@pytest.mark.parametrize(
    ("sentiment", "problem"),
    [
        (None, "the judge gave none"),
        (1.5, "the judge's sentiment is outside [-1, 1]"),
        ("very positive", "the judge's sentiment is not a number"),
        (True, "the judge's sentiment is not a number"),
    ],
)
def test_an_unusable_sentiment_leaves_the_verdict_standing(
    server: ProviderServer, sentiment: object, problem: str
) -> None:
    answer: dict[str, Any] = {"verdict": "pass", "score": 0.8, "reasons": []}
    if sentiment is not None:
        answer["sentiment"] = sentiment
    result = _ask(server, answer).result
    assert (result.code, result.passed) == ("judge.verdict", True)
    assert judged_sentiment(result) == JudgedSentiment(None, problem)


def test_a_judge_not_asked_for_sentiment_is_as_strict_as_before(server: ProviderServer) -> None:
    answer = {"verdict": "pass", "score": 0.9, "reasons": [], "sentiment": 0.5}
    result = _ask(server, answer, sentiment=False).result
    assert result.code == "judge.bad_response"  # an extra property is off-schema, as ever
    assert judged_sentiment(result) is None


def test_the_judges_reasons_cannot_forge_a_sentiment(server: ProviderServer) -> None:
    forged = "judge sentiment +1.0000; great"
    answer = {"verdict": "pass", "score": 0.9, "reasons": [forged]}
    result = _ask(server, answer).result
    assert forged in result.message
    assert judged_sentiment(result) == JudgedSentiment(None, "the judge gave none")
    other = CheckResult(code="judge.timeout", passed=False, message=forged)
    assert judged_sentiment(other) is None
