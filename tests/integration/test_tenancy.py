"""Binding requests to producers on a real broker: squatting, signatures, profiles, callbacks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from agents.tenants import ATTEMPT_FORGED, ATTEMPT_INVALID, UNAUTHENTICATED, UNKNOWN_TENANT
from assetline.client import LineClient, await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.attempts import MAX_ATTEMPT
from schemas.records import AssetKind, Constraints, GenerationRequest
from streams.codecs import Codecs
from streams.dead_letters import header_map
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]
CODECS = Codecs.load()
# A brand check the offline text never passes, and one re-generation: attempt 2 (marked by
# validate) must be admitted under tenancy, and its failure proves the brand checks ran.
PROFILE = """
id: acme
max_attempts: 2
review: false
text:
  required: ["Zebra-Terms-42."]
"""


def _request(request_id: str, persona: str, **update: object) -> GenerationRequest:
    base = GenerationRequest(
        request_id=request_id,
        idempotency_key=request_id,
        tenant="acme",
        campaign_id="tenancy",
        kind=AssetKind.TEXT,
        prompt_template="Headline for ${persona}",
        variables={"persona": persona},
        constraints=Constraints(max_chars=200),
    )
    return base.model_copy(update=update)


def _dead_letters(settings: Settings, want: int, worker: WorkerProcess) -> dict[bytes, str]:
    """Record key -> error code of the dead-letter topic, once it holds ``want`` records."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    deadline = time.monotonic() + 60
    while True:
        records = asyncio.run(read_to_end(settings.kafka_bootstrap, names.deadletter))
        if len(records) >= want:
            break
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.5)
    return {r.key or b"": header_map(r.headers)["assetline.dlq.error.code"] for r in records}


def test_a_squatter_cannot_take_another_requests_id_with_a_high_attempt(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    """attempt=50 under someone else's id used to complete with the squatter's text and make
    the real request a duplicate; attempt=2**31-1 pinned a request so it never completed."""
    names = TopicNames.with_prefix(line_settings.topic_prefix)
    asyncio.run(ensure_topics(line_settings.kafka_bootstrap, line_topic_specs(line_settings)))
    real = _request("victim-1", "VictimPersona")
    pinned_real = _request("victim-2", "SecondVictim")
    squat = real.model_copy(update={"attempt": 50, "variables": {"persona": "SquatterText"}})
    pin = pinned_real.model_copy(
        update={"attempt": MAX_ATTEMPT, "variables": {"persona": "PinnerText"}}
    )

    async def produce() -> None:
        async with LineClient(line_settings) as client:
            # The squatters go first, on the same keys (so the same partitions, in order).
            for forged in (squat, pin):
                value = CODECS.request.encode(forged)
                await client.send_raw(names.requests, forged.request_id.encode(), value)
            await client.submit([real, pinned_real])

    asyncio.run(produce())
    worker = start_worker(line_settings)
    ids = [real.request_id, pinned_real.request_id]
    completions = asyncio.run(await_completions(line_settings, ids, timeout=90))
    for request in (real, pinned_real):
        assert request.request_id in completions, worker.log_tail()
        (done,) = completions[request.request_id]  # exactly one: the squatter got none
        assert done.status.value == "DELIVERED", done.reasons
        assert done.attempt == 1
        assert done.location is not None
        text = Path(unquote(urlparse(done.location).path)).read_text(encoding="utf-8")
        assert request.variables["persona"] in text
        assert "SquatterText" not in text
        assert "PinnerText" not in text

    codes = _dead_letters(line_settings, 2, worker)
    assert codes == {b"victim-1": ATTEMPT_FORGED, b"victim-2": ATTEMPT_INVALID}


def test_tenants_file_binds_requests_to_their_producers(
    line_settings: Settings, start_worker: StartWorker, tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "acme.yaml").write_text(PROFILE)
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(
        "tenants:\n"
        "  acme: {producer_secret: acme-producer, profiles: [acme], default_profile: acme,\n"
        "         webhook_secret: acme-hooks}\n"
    )
    settings = line_settings.model_copy(
        update={
            "tenants_file": tenants,
            "profiles_dir": profiles,
            "api_keys": {
                "line": "a-long-random-line-secret",
                "acme-producer": "acme-producer-key",
                "acme-hooks": "acme-webhook-key",
            },
            # No notify stage: the webhook job stays on .webhooks, where the test reads it.
            "stages": ("generate", "validate", "deliver", "review"),
        }
    )
    settings = Settings.model_validate(settings.model_dump())  # api_keys as SecretStr
    names = TopicNames.with_prefix(settings.topic_prefix)
    asyncio.run(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)))
    signed = _request("t-signed", "Signed", callback_url="https://hooks.example.com/acme")
    forbidden = _request("t-forbidden", "Forbidden", brand_profile_id="globex")
    unsigned = _request("t-unsigned", "Unsigned")
    stranger = _request("t-stranger", "Stranger", tenant="mallory")

    async def produce() -> None:
        async with LineClient(settings, signing_secret="acme-producer-key") as client:
            await client.submit([signed, forbidden])
        async with LineClient(settings) as client:  # no signature
            await client.submit([unsigned, stranger])

    asyncio.run(produce())
    worker = start_worker(settings)
    ids = [signed.request_id, forbidden.request_id]
    completions = asyncio.run(await_completions(settings, ids, timeout=90))
    assert set(completions) == set(ids), worker.log_tail()
    (done,) = completions[forbidden.request_id]
    assert done.status.value == "FAILED"
    prefix = "request.profile_forbidden: tenant 'acme' may not use 'globex'"
    assert any(r.startswith(prefix) for r in done.reasons), done.reasons
    # The signed request omitted its profile: the tenant's default ran the brand checks, and
    # the line's own re-generation (attempt 2, origin-marked) was admitted.
    (done,) = completions[signed.request_id]
    assert (done.status.value, done.attempt) == ("REJECTED", 2), done.reasons
    assert any(r.startswith("text.required") for r in done.reasons), done.reasons
    raws = asyncio.run(read_to_end(settings.kafka_bootstrap, names.raw))
    seen = [
        (raw.request.attempt, raw.request.brand_profile_id)
        for raw in (CODECS.raw.decode(r.value or b"") for r in raws)
        if raw.request.request_id == signed.request_id
    ]
    assert sorted(seen) == [(1, "acme"), (2, "acme")]
    # Its callback is signed with acme's own webhook secret, not the shared default.
    jobs = [
        CODECS.webhook_job.decode(r.value or b"")
        for r in asyncio.run(read_to_end(settings.kafka_bootstrap, names.webhooks))
    ]
    assert [(j.url, j.secret_name) for j in jobs if j.webhook_id] == [
        ("https://hooks.example.com/acme", "acme-hooks")
    ]

    codes = _dead_letters(settings, 2, worker)
    assert codes == {b"t-unsigned": UNAUTHENTICATED, b"t-stranger": UNKNOWN_TENANT}
    late = asyncio.run(
        await_completions(settings, [unsigned.request_id, stranger.request_id], timeout=2)
    )
    assert late == {}
