"""Hostile provider answers on a real broker (issue 12 #5, #8, #9, #10).

A worker routes to a real OpenAI-shaped server that (a) answers an image request with a URL on
an internal host serving a secret page, (b) answers a chat request with a 401 that echoes the
API key JSON-, URL- and base64-encoded. Nothing of the page or the key may reach a completion
(what the signed webhook body is built from) or an alert; the internal host is never called;
an absurd image size ends FAILED before any provider call.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import SecretStr

from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, CompletionStatus, Constraints, GenerationRequest, ModelSpec
from streams.codecs import Codecs
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import read_topic, submit_requests
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_error,
    openai_image_response,
    provider_server,
)

pytestmark = pytest.mark.integration

API_KEY = "sk-hostile-" + uuid.uuid4().hex
SECRET_PAGE = b"<html>db password: hunter2-INTERNAL-ONLY</html>"

ROUTING = """
providers:
  primary:
    type: openai
    base_url: {url}/v1
    api_key: primary
    image_response_format: url
aliases:
  copy:
    chain: [{{provider: primary, model: gpt-4o-mini, timeout_s: 5, max_retries: 0}}]
  hero:
    chain: [{{provider: primary, model: gpt-image-1, timeout_s: 5, max_retries: 0}}]
default_alias: copy
"""


@pytest.fixture
def openai_server() -> Iterator[ProviderServer]:
    with provider_server() as server:
        yield server


@pytest.fixture
def internal() -> Iterator[ProviderServer]:
    with provider_server("127.0.0.2") as server:
        yield server


def _request(run: str, name: str, kind: AssetKind, alias: str, **size: int) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"hp-{run}-{name}",
        idempotency_key=f"hp-{run}-{name}",
        tenant="acme",
        campaign_id="hostile",
        kind=kind,
        prompt_template="Something for ${who}",
        variables={"who": "runners"},
        model=ModelSpec(alias=alias),
        constraints=Constraints(**size),
    )


def _key_forms() -> list[str]:
    return [
        API_KEY,
        API_KEY[:16],
        quote(API_KEY, safe=""),
        base64.b64encode(f"user:{API_KEY}".encode()).decode()[8:-4],
    ]


def test_hostile_provider_answers_leak_nothing(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    openai_server: ProviderServer,
    internal: ProviderServer,
    tmp_path: Path,
) -> None:
    internal.script("GET", "/admin", [Reply(body=SECRET_PAGE, content_type="text/html")])
    openai_server.script(
        "POST",
        "/v1/images/generations",
        [Reply(json=openai_image_response(f"{internal.url}/admin"))],
    )
    basic = base64.b64encode(f"user:{API_KEY}".encode()).decode()
    echo = f"bad key {json.dumps(API_KEY)} in {quote(API_KEY, safe='')} (Basic {basic})"
    openai_server.script(
        "POST", "/v1/chat/completions", [Reply(status=401, json=openai_error(echo))]
    )
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.format(url=openai_server.url))
    settings = line_settings.model_copy(
        update={"routing_file": routing, "api_keys": {"primary": SecretStr(API_KEY)}}
    )
    run = uuid.uuid4().hex[:8]
    image = _request(run, "url", AssetKind.IMAGE, "hero", width=64, height=64)
    text = _request(run, "echo", AssetKind.TEXT, "copy")
    bomb = _request(run, "bomb", AssetKind.IMAGE, "hero", width=2147483647, height=-7)
    asyncio.run(submit_requests(settings, [image, text, bomb]))
    worker = start_worker(settings)

    ids = [image.request_id, text.request_id, bomb.request_id]
    completions = asyncio.run(await_completions(settings, ids, timeout=90))
    assert sorted(completions) == sorted(ids), worker.log_tail()
    done = {request_id: found[0] for request_id, found in completions.items()}
    assert {c.status for c in done.values()} == {CompletionStatus.FAILED}

    assert [a.code for a in done[image.request_id].attempts] == ["provider.unsafe_url"]
    assert internal.requests == []  # the internal page was never fetched
    assert [a.code for a in done[text.request_id].attempts] == ["provider.auth"]
    assert done[bomb.request_id].attempts == []
    assert any("request.bad_image_size" in r for r in done[bomb.request_id].reasons)
    sizes = [s.json.get("size") for s in openai_server.requests_to("/v1/images/generations")]
    assert sizes == ["64x64"]  # the bomb never reached the provider

    names = TopicNames.with_prefix(settings.topic_prefix)
    alerts = asyncio.run(read_topic(settings, names.alerts, min_messages=2, timeout=10))
    codec = Codecs.load().alert
    texts = [json.dumps(c.model_dump(mode="json")) for c in done.values()]
    texts += [json.dumps(codec.decode(m.value).model_dump(mode="json")) for m in alerts]  # type: ignore[attr-defined]
    texts.append(worker.log_tail(10_000))
    for blob in texts:
        assert "hunter2" not in blob
        for form in _key_forms():
            assert form not in blob
