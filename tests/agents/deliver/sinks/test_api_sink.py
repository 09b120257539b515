"""The content-API sink against real local servers: the shipped Mailchimp and Klaviyo configs
against servers speaking those APIs (tests/support/email_platforms), hostile answers against a
scriptable one (tests/support/provider_server)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Iterator
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from agents.deliver.deliver_one import deliver_approved
from agents.deliver.destinations import (
    ApiDestination,
    DestinationsFileError,
    build_sink,
    load_destinations,
    parse_destinations,
)
from agents.deliver.sinks import Located, Sink, SinkError
from agents.deliver.sinks.api import ApiSink, ApiSinkConfig, retry_after_s
from agents.deliver.sinks.retry import RetryingSink
from schemas.records import (
    AssetKind,
    CompletionStatus,
    GenerationRequest,
    RawAsset,
    ValidatedAsset,
    ValidationReport,
    Verdict,
    utc_now,
)
from streams.blobs import LocalBlobStore
from streams.config_files import parse_config_text, read_config_text
from streams.redaction import MASK
from tests.support.email_platforms import (
    KLAVIYO_KEY,
    MAILCHIMP_KEY,
    PlatformServer,
    platform_server,
)
from tests.support.provider_server import ProviderServer, Reply, png_bytes, provider_server

EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "destinations"
PATH = PurePosixPath("acme/spring/req-1.png")
PNG = png_bytes()


@pytest.fixture
def platforms() -> Iterator[PlatformServer]:
    with platform_server() as server:
        yield server


@pytest.fixture
def scripted() -> Iterator[ProviderServer]:
    with provider_server() as server:
        yield server


def example(name: str, url: str, key: str, **changes: Any) -> ApiSink:
    """The shipped example's destination, pointed at the local server (and let reach it)."""
    path = EXAMPLES / f"{name}.yaml"
    config = parse_destinations(parse_config_text(read_config_text(path), ".yaml", str(path)), name)
    spec = config.destinations[name]
    assert isinstance(spec, ApiDestination)
    spec = spec.model_copy(update={"url": url, "allow": ("127.0.0.1",), **changes})
    sink = build_sink(name, spec, {spec.secret or "": SecretStr(key)})
    assert isinstance(sink, ApiSink)
    return sink


def mailchimp(server: PlatformServer, key: str = MAILCHIMP_KEY, **changes: Any) -> ApiSink:
    return example("mailchimp", server.url + "/3.0/file-manager/files", key, **changes)


def klaviyo(server: PlatformServer, key: str = KLAVIYO_KEY, **changes: Any) -> ApiSink:
    return example("klaviyo", server.url + "/api/image-upload", key, **changes)


def upload(sink: Sink, data: bytes = PNG, path: PurePosixPath = PATH) -> str:
    return asyncio.run(sink.create(path, data, "image/png"))


def failure(sink: Sink, data: bytes = PNG, path: PurePosixPath = PATH) -> SinkError:
    with pytest.raises(SinkError) as caught:
        upload(sink, data, path)
    return caught.value


def no_sleep_recorder() -> tuple[list[float], Any]:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    return slept, sleep


# --- the shipped examples ------------------------------------------------------------------


def test_both_examples_load_as_destinations_files() -> None:
    for name in ("mailchimp", "klaviyo"):
        secrets = {f"{name}-key": SecretStr("k")}
        loaded = load_destinations(EXAMPLES / f"{name}.yaml", secrets, Path("unused"))
        assert isinstance(loaded.sinks[name], ApiSink)
        assert loaded.default == name


def test_an_example_without_its_secret_is_refused() -> None:
    with pytest.raises(DestinationsFileError, match="mailchimp-key"):
        load_destinations(EXAMPLES / "mailchimp.yaml", {}, Path("unused"))


def test_mailchimp_upload_in_its_documented_shape(platforms: PlatformServer) -> None:
    location = upload(mailchimp(platforms))
    [stored] = platforms.uploads
    assert stored.data == PNG
    assert stored.fields["name"] == "req-1.png"
    assert stored.fields["folder_id"] == 12345
    assert base64.b64decode(stored.fields["file_data"]) == PNG
    assert isinstance(location, Located)
    assert location.startswith("https://mcusercontent.com/")
    assert location.endswith("/req-1.png")
    assert location.external_ids == {"mailchimp_file_id": stored.id}


def test_klaviyo_upload_in_its_documented_shape(platforms: PlatformServer) -> None:
    location = upload(klaviyo(platforms))
    [stored] = platforms.uploads
    assert stored.data == PNG
    assert stored.name == "spring-req-1"
    assert stored.headers["revision"] == "2024-10-15"
    assert stored.headers["Accept"] == "application/vnd.api+json"
    assert isinstance(location, Located)
    digest = hashlib.sha256(PNG).hexdigest()[:12]
    assert location == f"https://d3k81ch9hvuctc.cloudfront.net/company/AbC123/images/{digest}.png"
    assert location.external_ids == {"klaviyo_image_id": stored.id}


def test_mailchimp_400_keeps_its_detail_and_is_final(platforms: PlatformServer) -> None:
    error = failure(mailchimp(platforms), path=PurePosixPath("acme/spring/req-1.webp"))
    assert error.code == "sink.api.bad_request"
    assert not error.retryable
    assert "File type not supported." in str(error)
    assert platforms.uploads == []


def test_klaviyo_400_keeps_its_detail_and_is_final(platforms: PlatformServer) -> None:
    error = failure(klaviyo(platforms), data=b"")
    assert error.code == "sink.api.bad_request"
    assert not error.retryable
    assert "The file is empty." in str(error)


@pytest.mark.parametrize("platform", ["mailchimp", "klaviyo"])
def test_401_is_unauthorized_and_the_echoed_key_is_masked(
    platforms: PlatformServer, platform: str
) -> None:
    wrong = "wrong-key-1234567890abcdef"
    sink = mailchimp(platforms, wrong) if platform == "mailchimp" else klaviyo(platforms, wrong)
    error = failure(sink)
    assert error.code == "sink.api.unauthorized"
    assert not error.retryable
    basic = base64.b64encode(f"anystring:{wrong}".encode()).decode()
    assert wrong not in str(error)
    assert basic not in str(error)
    assert MASK in str(error)
    assert wrong not in repr(sink)


@pytest.mark.parametrize("platform", ["mailchimp", "klaviyo"])
def test_429_waits_its_retry_after_then_lands(platforms: PlatformServer, platform: str) -> None:
    platforms.throttle[platform] = 2
    platforms.retry_after = "7"
    sink = mailchimp(platforms) if platform == "mailchimp" else klaviyo(platforms)
    error = failure(sink)
    assert error.code == "sink.api.throttled"
    assert error.retryable
    assert error.retry_after_s == 7.0
    slept, sleep = no_sleep_recorder()
    # a new sink: each asyncio.run is a new loop, and pooled connections belong to their loop
    sink = mailchimp(platforms) if platform == "mailchimp" else klaviyo(platforms)
    retrying = RetryingSink(sink, 4, 0.01, max_delay_s=30.0, sleep=sleep)
    location = upload(retrying)
    assert slept == [7.0]
    assert len(platforms.uploads) == 1
    assert isinstance(location, Located)
    assert location.external_ids


def test_retry_after_is_capped_by_the_retry_policy(platforms: PlatformServer) -> None:
    platforms.throttle["mailchimp"] = 1
    platforms.retry_after = "3600"
    slept, sleep = no_sleep_recorder()
    upload(RetryingSink(mailchimp(platforms), 3, 0.01, max_delay_s=5.0, sleep=sleep))
    assert slept == [5.0]


def test_retry_after_forms() -> None:
    assert retry_after_s("12") == 12.0
    when = format_datetime(utc_now() + timedelta(seconds=30), usegmt=True)
    seconds = retry_after_s(when)
    assert seconds is not None
    assert 25 <= seconds <= 31
    assert retry_after_s(None) is None
    assert retry_after_s("soon") is None


# --- hostile receivers -------------------------------------------------------------------


def scripted_sink(server: ProviderServer, **changes: Any) -> ApiSink:
    fields: dict[str, Any] = {
        "url": server.url + "/upload",
        "fields": {"name": "{name}", "file_data": "{file_base64}", "sha": "{sha256}"},
        "auth": {"type": "header", "header": "X-Key", "prefix": "Key "},
        "secret": SecretStr("s3cr3t-value"),
        "location": "url",
        "external_ids": {"platform_id": "id"},
        "allow": ("127.0.0.1",),
        "timeout_s": 2.0,
    }
    fields.update(changes)
    return ApiSink(ApiSinkConfig(**fields))


def test_metadata_placeholders_are_filled(scripted: ProviderServer) -> None:
    scripted.script("POST", "/upload", [Reply(json={"id": 7, "url": "https://cdn/x.png"})])
    sink = scripted_sink(
        scripted,
        fields={
            "name": "{name}",
            "meta": {"tenant": "{tenant}", "campaign": "{campaign_id}", "request": "{request_id}",
                     "type": "{media_type}", "sha256": "{sha256}", "size": "{size}"},
            "tags": ["{campaign_id}", 3],
        },
    )  # fmt: skip
    location = upload(sink)
    [seen] = scripted.requests
    assert seen.json["meta"] == {
        "tenant": "acme",
        "campaign": "spring",
        "request": "req-1",
        "type": "image/png",
        "sha256": hashlib.sha256(PNG).hexdigest(),
        "size": str(len(PNG)),
    }
    assert seen.json["tags"] == ["spring", 3]
    assert seen.headers["x-key"] == "Key s3cr3t-value"
    assert location == "https://cdn/x.png"
    assert isinstance(location, Located)
    assert location.external_ids == {"platform_id": "7"}


def test_private_addresses_are_refused_unless_allowed(scripted: ProviderServer) -> None:
    error = failure(scripted_sink(scripted, allow=()))
    assert error.code.startswith("ssrf.")
    assert scripted.requests == []


def test_redirects_are_not_followed(scripted: ProviderServer) -> None:
    scripted.script(
        "POST", "/upload", [Reply(status=307, headers={"Location": "http://169.254.169.254/"})]
    )
    error = failure(scripted_sink(scripted))
    assert error.code == "sink.api.redirected"
    assert not error.retryable
    assert len(scripted.requests) == 1


def test_an_oversized_answer_is_refused(scripted: ProviderServer) -> None:
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    scripted.script("POST", "/upload", [Reply(body=big, content_type="application/json")])
    error = failure(scripted_sink(scripted, max_response_bytes=64 * 1024))
    assert error.code == "sink.api.response_too_large"


def test_a_slow_drip_answer_times_out_as_a_whole(scripted: ProviderServer) -> None:
    body = b'{"id": 1, "url": "https://cdn/x"}' + b" " * 4000
    scripted.script(
        "POST", "/upload",
        [Reply(body=body, chunked=True, chunk_size=200, chunk_delay_s=0.2,
               content_type="application/json")],
    )  # fmt: skip
    error = failure(scripted_sink(scripted, timeout_s=1.0))
    assert error.code == "sink.api.timeout"
    assert error.retryable


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (403, "sink.api.forbidden", False),
        (404, "sink.api.not_found", False),
        (413, "sink.api.too_large", False),
        (422, "sink.api.invalid", False),
        (418, "sink.api.rejected", False),
        (503, "sink.api.unavailable", True),
    ],
)
def test_statuses_map_to_reason_codes(
    scripted: ProviderServer, status: int, code: str, retryable: bool
) -> None:
    scripted.script("POST", "/upload", [Reply(status=status, json={"echo": "Key s3cr3t-value"})])
    error = failure(scripted_sink(scripted))
    assert (error.code, error.retryable) == (code, retryable)
    assert "s3cr3t-value" not in str(error)


@pytest.mark.parametrize(
    "answer", [{"url": "https://cdn/x"}, {"id": 1}, {"id": {"nested": 1}, "url": "u"}]
)
def test_an_answer_without_the_mapped_fields_is_a_bad_response(
    scripted: ProviderServer, answer: dict[str, Any]
) -> None:
    scripted.script("POST", "/upload", [Reply(json=answer)])
    assert failure(scripted_sink(scripted)).code == "sink.api.bad_response"


def test_sidecars_stay_off_the_platform_unless_asked(scripted: ProviderServer) -> None:
    scripted.script("POST", "/upload", [Reply(json={"id": 1, "url": "https://cdn/x"})])
    sidecar = PurePosixPath("acme/spring/req-1.png.json")
    assert asyncio.run(scripted_sink(scripted).write(sidecar, b"{}", "application/json")) == ""
    assert scripted.requests == []
    asyncio.run(scripted_sink(scripted, sidecars=True).write(sidecar, b"{}", "application/json"))
    assert len(scripted.requests) == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"fields": {"x": "{password}"}},
        {"body": "multipart", "fields": {"file": "{file_base64}"}},
        {"body": "multipart", "fields": {"n": 3}},
        {"secret": None},
        {"url": "ftp://x/upload"},
    ],
)
def test_bad_configs_are_refused(scripted: ProviderServer, changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        scripted_sink(scripted, **changes)


def test_the_completion_carries_location_and_external_ids(
    platforms: PlatformServer, tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    ref = blobs.put(PNG, "image/png")
    request = GenerationRequest(
        request_id="r-1",
        idempotency_key="k",
        tenant="acme",
        campaign_id="spring",
        kind=AssetKind.IMAGE,
        prompt_template="hi",
    )
    raw = RawAsset(request=request, blob=ref, provider="offline", model_version="1", latency_ms=1)
    validated = ValidatedAsset(raw=raw, report=ValidationReport(verdict=Verdict.PASS))
    sink = RetryingSink(mailchimp(platforms), 2, 0.0)
    done = asyncio.run(deliver_approved(validated, blobs, sink))
    assert done.status is CompletionStatus.DELIVERED
    [stored] = platforms.uploads
    assert done.external_ids == {"mailchimp_file_id": stored.id}
    assert done.location is not None
    assert done.location.endswith("/r-1.png")
    assert done.sha256 == hashlib.sha256(PNG).hexdigest()
