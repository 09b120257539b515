"""An email-platform destination on a real broker: the shipped Mailchimp example, pointed at a
local server speaking Mailchimp's File Manager upload, receives every approved image (one
answered 429 first) and each completion carries the platform's URL and file id."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, CompletionStatus, Constraints, GenerationRequest
from streams.settings import Settings
from tests.integration.helpers import submit_requests
from tests.support.email_platforms import MAILCHIMP_KEY, PlatformServer, platform_server

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "destinations" / "mailchimp.yaml"


@pytest.fixture
def mailchimp() -> Iterator[PlatformServer]:
    with platform_server() as server:
        yield server


def test_images_land_in_mailchimp_and_completions_carry_its_ids(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    mailchimp: PlatformServer,
    tmp_path: Path,
) -> None:
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    spec = config["destinations"]["mailchimp"]
    spec["url"] = mailchimp.url + "/3.0/file-manager/files"
    spec["allow"] = ["127.0.0.1"]  # the SSRF guard refuses loopback unless allowed
    config["retry"] = {"attempts": 4, "base_delay_s": 0.01, "max_delay_s": 0.2}
    destinations = tmp_path / "destinations.yaml"
    destinations.write_text(yaml.safe_dump(config), encoding="utf-8")
    mailchimp.throttle["mailchimp"] = 1  # the first upload is answered 429 Retry-After: 1
    settings = line_settings.model_copy(
        update={
            "destinations_file": destinations,
            "api_keys": {"mailchimp-key": SecretStr(MAILCHIMP_KEY)},
        }
    )
    run = uuid.uuid4().hex[:8]
    requests = [
        GenerationRequest(
            request_id=f"{run}-{i}",
            idempotency_key=f"{run}-{i}",
            tenant="acme",
            campaign_id="launch",
            kind=AssetKind.IMAGE,
            prompt_template="Hero for ${p}",
            variables={"p": f"persona {i}"},
            constraints=Constraints(width=128, height=128, format="png"),
        )
        for i in range(3)
    ]

    asyncio.run(submit_requests(settings, requests))
    worker = start_worker(settings)
    ids = [r.request_id for r in requests]
    completions = asyncio.run(await_completions(settings, ids, timeout=90))
    assert set(completions) == set(ids), worker.log_tail()

    uploads = {upload.name: upload for upload in mailchimp.uploads}
    assert len(uploads) == 3
    assert mailchimp.requests == 4  # one 429, then three uploads
    for request in requests:
        (done,) = completions[request.request_id]
        assert done.status is CompletionStatus.DELIVERED, done.reasons
        upload = uploads[f"{request.request_id}.png"]
        assert done.external_ids == {"mailchimp_file_id": upload.id}
        assert done.location is not None
        assert done.location.startswith("https://mcusercontent.com/abc123/images/")
        assert done.location.endswith(f"/{request.request_id}.png")
        assert done.sha256 == hashlib.sha256(upload.data).hexdigest()
        assert base64.b64decode(upload.fields["file_data"]) == upload.data
        assert upload.fields["folder_id"] == 12345
        assert b"trainedAlgorithmicMedia" in upload.data  # labelled before it was uploaded
    assert MAILCHIMP_KEY not in worker.log_path.read_text(errors="replace")
