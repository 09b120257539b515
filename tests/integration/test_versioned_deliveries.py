"""Replays cannot corrupt deliveries (issue 14 part 6), on a real broker and real destinations.

Requests are delivered to the filesystem, S3 (a local moto server) and an HTTP DAM (a local
receiver that honours ``If-None-Match`` and ``Idempotency-Key``), then ``.raw`` is replayed.
The replayed images are other bytes (the provenance stamp carries the attempt), so they land
in versions beside the first deliveries, which keep their bytes and their paths; the replayed
texts are the same bytes (their stamp is a sidecar), so they stay where they are: no version.
Every completion's location holds exactly the bytes its sha256 names, and so does its webhook.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from assetline.cli import cli
from assetline.dev.child_worker import WorkerProcess
from schemas.records import (
    AssetCompleted,
    AssetKind,
    CompletionStatus,
    Constraints,
    GenerationRequest,
)
from streams.codecs import Codecs
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from tests.integration.helpers import submit_requests
from tests.support.dam_server import Dam, dam_server
from tests.support.provider_server import ProviderServer, Reply, provider_server
from tests.support.s3_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, moto_s3

pytestmark = pytest.mark.integration

CODECS = Codecs.load()
BUCKET = "versions"
HOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def s3() -> Iterator[tuple[str, object]]:
    with moto_s3(BUCKET) as server:
        yield server


@pytest.fixture
def dam() -> Iterator[Dam]:
    with dam_server() as server:
        yield server


@pytest.fixture
def hooks() -> Iterator[ProviderServer]:
    with provider_server() as server:
        server.handle("POST", "/hooks", lambda body: Reply(status=204))
        yield server


def _requests(run: str) -> list[GenerationRequest]:
    out = []
    for tenant, kinds in (
        ("fs-co", (AssetKind.IMAGE, AssetKind.TEXT)),
        ("bucket-co", (AssetKind.IMAGE,)),
        ("dam-co", (AssetKind.IMAGE, AssetKind.TEXT)),
    ):
        for kind in kinds:
            image = kind is AssetKind.IMAGE
            out.append(
                GenerationRequest(
                    request_id=f"{run}-{tenant}-{kind.value.lower()}",
                    idempotency_key=f"{run}-{tenant}-{kind.value.lower()}",
                    tenant=tenant,
                    campaign_id="launch",
                    kind=kind,
                    prompt_template="Hero for ${p}" if image else "Copy for ${p}",
                    variables={"p": tenant},
                    constraints=Constraints(width=96, height=96, format="png")
                    if image
                    else Constraints(max_chars=200),
                )
            )
    return out


def _completions(settings: Settings) -> dict[str, list[AssetCompleted]]:
    names = TopicNames.with_prefix(settings.topic_prefix)
    out: dict[str, list[AssetCompleted]] = {}
    for record in asyncio.run(read_to_end(settings.kafka_bootstrap, names.completed)):
        done = CODECS.completed.decode(record.value or b"")
        out.setdefault(done.request_id, []).append(done)
    return out


def _wait(
    settings: Settings, ids: list[str], attempts: list[int], worker: WorkerProcess
) -> dict[str, list[AssetCompleted]]:
    deadline = time.monotonic() + 90
    while True:
        seen = _completions(settings)
        if all([d.attempt for d in seen.get(rid, [])] == attempts for rid in ids):
            return seen
        if time.monotonic() > deadline:
            got = {rid: [d.attempt for d in seen.get(rid, [])] for rid in ids}
            raise AssertionError(f"completions {got}, wanted {attempts}\n{worker.log_tail()}")
        time.sleep(0.5)


def _replay_raw(settings: Settings, until: str) -> None:
    env = {
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ASSETLINE_TOPIC_PREFIX": settings.topic_prefix,
        "ASSETLINE_APP_ID": settings.app_id,
    }
    args = ["replay", "--topic", "raw", "--from", "0", "--to", until, "--into", "raw"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "replayed 5 of 5 record(s)" in result.output, result.output


def _stored(done: AssetCompleted, s3_client: object, dam: Dam) -> bytes:
    """The bytes at a completion's location, read back from its destination."""
    assert done.location is not None
    if done.location.startswith("file://"):
        return Path(unquote(urlparse(done.location).path)).read_bytes()
    if done.location.startswith("s3://"):
        key = done.location.removeprefix(f"s3://{BUCKET}/")
        body: bytes = s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read()  # type: ignore[attr-defined]
        return body
    return dam.objects[urlparse(done.location).path]


def test_a_replay_with_other_bytes_makes_a_version_and_the_same_bytes_stay_in_place(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    s3: tuple[str, object],
    dam: Dam,
    hooks: ProviderServer,
    tmp_path: Path,
) -> None:
    endpoint, s3_client = s3
    delivery = tmp_path / "delivery"
    destinations = tmp_path / "destinations.yaml"
    destinations.write_text(
        f"""
destinations:
  local: {{type: filesystem, root: "{delivery}"}}
  bucket: {{type: s3, endpoint_url: "{endpoint}", bucket: {BUCKET},
           access_key_id: {ACCESS_KEY_ID}, secret: s3}}
  dam: {{type: http, url: "{dam.url}/dam/{{tenant}}/{{campaign_id}}/{{name}}"}}
default: local
routes:
  - {{tenant: bucket-co, destination: bucket}}
  - {{tenant: dam-co, destination: dam}}
webhooks:
  - {{tenant: fs-co, url: "{hooks.url}/hooks", secret: hooks}}
"""
    )
    settings = line_settings.model_copy(
        update={
            "destinations_file": destinations,
            "api_keys": {"s3": SecretStr(SECRET_ACCESS_KEY), "hooks": SecretStr(HOOK_SECRET)},
            "webhook_allow": ("127.0.0.1",),
            "stages": ("generate", "validate", "deliver", "review", "notify"),
        }
    )
    asyncio.run(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)))
    requests = _requests(uuid.uuid4().hex[:8])
    ids = [r.request_id for r in requests]
    asyncio.run(submit_requests(settings, requests))
    worker = start_worker(settings)
    first = _wait(settings, ids, [1], worker)
    time.sleep(0.05)
    until = datetime.now(UTC).isoformat(timespec="milliseconds")
    time.sleep(0.05)
    before = {rid: _stored(first[rid][0], s3_client, dam) for rid in ids}

    _replay_raw(settings, until)
    both = _wait(settings, ids, [1, 1001], worker)

    for request in requests:
        old, new = both[request.request_id]
        assert old.status is new.status is CompletionStatus.DELIVERED, (old.reasons, new.reasons)
        assert old.location is not None
        assert new.location is not None
        assert old.sha256 is not None
        assert new.sha256 is not None
        ext = "png" if request.kind is AssetKind.IMAGE else "txt"
        assert old.location.endswith(f"/{request.request_id}.{ext}")  # the path of today
        if request.kind is AssetKind.IMAGE:  # other bytes: a version beside the first
            assert new.sha256 != old.sha256
            assert new.location.endswith(f"{request.request_id}.{new.sha256[:16]}.png")
        else:  # the same bytes: the same place, no version
            assert new.sha256 == old.sha256
            assert new.location == old.location
        # the first delivery was not touched, and each location holds what its completion names
        assert _stored(old, s3_client, dam) == before[request.request_id]
        for done in (old, new):
            assert hashlib.sha256(_stored(done, s3_client, dam)).hexdigest() == done.sha256

    # Only the images made versions: nothing else appeared beside the first deliveries.
    fs_files = sorted(p.name for p in (delivery / "fs-co" / "launch").iterdir())
    fs_image, fs_text = (r.request_id for r in requests if r.tenant == "fs-co")
    fs_version = both[fs_image][1].sha256
    assert fs_version is not None
    version = f"{fs_image}.{fs_version[:16]}.png"
    assert fs_files == sorted([f"{fs_image}.png", version, f"{fs_text}.txt", f"{fs_text}.txt.json"])
    listed = s3_client.list_objects_v2(Bucket=BUCKET)["Contents"]  # type: ignore[attr-defined]
    assert len(listed) == 2

    # HTTP: one object per version, never a 412 overwritten, one Idempotency-Key per content.
    dam_image, dam_text = (r.request_id for r in requests if r.tenant == "dam-co")
    assets = [u for u in dam.uploads if not u.path.endswith(".json")]
    keys: dict[str, set[bytes]] = {}
    for upload in assets:
        keys.setdefault(upload.headers["idempotency-key"], set()).add(upload.body)
        assert upload.headers["if-none-match"] == "*"
    assert all(len(bodies) == 1 for bodies in keys.values())
    image_paths = {u.path for u in assets if u.path.startswith(f"/dam/dam-co/launch/{dam_image}")}
    assert len(image_paths) == 2
    text_uploads = [u for u in assets if dam_text in u.path]
    assert {u.path for u in text_uploads} == {f"/dam/dam-co/launch/{dam_text}.txt"}
    assert len({u.headers["idempotency-key"] for u in text_uploads}) == 1  # same bytes, same key

    # The webhook of each completion names the version its completion names.
    deadline = time.monotonic() + 30
    while len(hooks.requests_to("/hooks")) < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    payloads = {
        (seen.json["data"]["request_id"], seen.json["data"]["attempt"]): seen.json["data"]
        for seen in hooks.requests_to("/hooks")
    }
    for rid in (fs_image, fs_text):
        for done in both[rid]:
            payload = payloads[(rid, done.attempt)]
            assert (payload["location"], payload["sha256"]) == (done.location, done.sha256)
