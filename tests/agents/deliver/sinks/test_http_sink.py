"""HTTP sink against a real local aiohttp server (tests/support/provider_server)."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from agents.deliver.layout import delivery_path, version_path
from agents.deliver.sinks import (
    PATH_TAKEN,
    HttpSink,
    HttpSinkConfig,
    Sink,
    SinkError,
    write_with_retry,
)
from agents.deliver.sinks.http import idempotency_key
from tests.support.provider_server import ProviderServer, Reply, provider_server

TOKEN = "Bearer tok-never-shown"
PATH = PurePosixPath("acme/spring/req-1.png")


@pytest.fixture
def receiver() -> Iterator[ProviderServer]:
    with provider_server() as server:
        yield server


def sink_for(server: ProviderServer, **changes: Any) -> HttpSink:
    fields: dict[str, Any] = {
        "url": server.url + "/upload/{tenant}/{campaign_id}/{name}",
        "auth_header": "Authorization",
        "auth_value": SecretStr(TOKEN),
        "headers": {"X-Line": "assetline"},
        "timeout_s": 5.0,
    }
    fields.update(changes)
    return HttpSink(HttpSinkConfig(**fields))


def write(sink: HttpSink, path: PurePosixPath = PATH, data: bytes = b"png bytes") -> str:
    return asyncio.run(sink.write(path, data, "image/png"))


def test_is_a_sink(receiver: ProviderServer) -> None:
    sink: Sink = sink_for(receiver)
    assert callable(sink.write)
    assert callable(sink.create)


def test_sends_bytes_type_auth_extra_headers_and_idempotency_key(
    receiver: ProviderServer,
) -> None:
    receiver.script("PUT", "/upload/acme/spring/req-1.png", [Reply(status=201)])

    location = write(sink_for(receiver), data=b"\x00\x01 image")

    [seen] = receiver.requests
    assert seen.method == "PUT"
    assert seen.body == b"\x00\x01 image"
    assert seen.headers["content-type"] == "image/png"
    assert seen.headers["authorization"] == TOKEN
    assert seen.headers["x-line"] == "assetline"
    assert seen.headers["idempotency-key"] == idempotency_key(PATH, b"\x00\x01 image")
    assert "if-none-match" not in seen.headers  # write replaces (sidecars); create does not
    assert location == receiver.url + "/upload/acme/spring/req-1.png"


def test_post_and_a_location_header_become_the_location(receiver: ProviderServer) -> None:
    receiver.script("POST", "/ingest", [Reply(status=202, headers={"Location": "/assets/42"})])

    location = write(sink_for(receiver, url=receiver.url + "/ingest", method="POST"))

    assert [seen.method for seen in receiver.requests] == ["POST"]
    assert location == receiver.url + "/assets/42"


def test_template_placeholders_cannot_escape_the_path(receiver: ProviderServer) -> None:
    path = delivery_path("../acme", "c 1/x", "../../etc/pass wd?q=1#f", "image/png")
    url = receiver.url + "/in/{tenant}/{campaign_id}/{request_id}/{name}"

    with pytest.raises(SinkError):  # nothing is scripted for the path: a 404, final
        write(sink_for(receiver, url=url), path=path)

    [seen] = receiver.requests
    segments = seen.path.split("/")
    assert segments[:2] == ["", "in"]
    assert len(segments) == 6  # '', in, tenant, campaign, request_id, name: nothing split
    tenant, campaign, request_id, name = segments[2:]
    assert (tenant, campaign, name) == tuple(path.parts)
    assert name == f"{request_id}.png"
    assert not any(segment.startswith(".") for segment in segments[2:])
    assert seen.query == {}
    assert " " not in request_id
    assert "/" not in request_id


def test_503_then_200_succeeds_with_retry(receiver: ProviderServer) -> None:
    receiver.script(
        "PUT",
        "/upload/acme/spring/req-1.png",
        [Reply(status=503, body=b"busy"), Reply(status=200)],
    )
    sink = sink_for(receiver)
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    location = asyncio.run(
        write_with_retry(lambda: sink.write(PATH, b"data", "image/png"), 3, 0.5, sleep)
    )

    assert location.endswith("/upload/acme/spring/req-1.png")
    assert len(receiver.requests) == 2
    assert [seen.body for seen in receiver.requests] == [b"data", b"data"]
    assert len(slept) == 1
    assert 0.0 <= slept[0] <= 0.5


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (400, "sink.http.rejected", False),
        (403, "sink.http.denied", False),
        (408, "sink.http.unavailable", True),
        (429, "sink.http.throttled", True),
        (500, "sink.http.unavailable", True),
    ],
)
def test_statuses_map_to_codes(
    receiver: ProviderServer, status: int, code: str, retryable: bool
) -> None:
    receiver.script("PUT", "/upload/acme/spring/req-1.png", [Reply(status=status)])

    with pytest.raises(SinkError) as caught:
        write(sink_for(receiver))

    assert (caught.value.code, caught.value.retryable) == (code, retryable)


def test_400_is_final_even_with_retry(receiver: ProviderServer) -> None:
    receiver.script(
        "PUT",
        "/upload/acme/spring/req-1.png",
        [Reply(status=400, body=f"bad request; you sent {TOKEN}".encode())],
    )
    sink = sink_for(receiver)
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    with pytest.raises(SinkError) as caught:
        asyncio.run(write_with_retry(lambda: sink.write(PATH, b"data", "image/png"), 5, 0.5, sleep))

    assert caught.value.code == "sink.http.rejected"
    assert len(receiver.requests) == 1
    assert slept == []
    assert "bad request" in str(caught.value)
    assert TOKEN not in str(caught.value)  # an echoing receiver cannot leak the token


def test_timeout_is_retryable(receiver: ProviderServer) -> None:
    receiver.script("PUT", "/upload/acme/spring/req-1.png", [Reply(status=200, delay_s=2.0)])

    with pytest.raises(SinkError) as caught:
        write(sink_for(receiver, timeout_s=0.2))

    assert caught.value.code == "sink.http.timeout"
    assert caught.value.retryable is True


def test_unreachable_receiver_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sink = HttpSink(HttpSinkConfig(url=f"http://127.0.0.1:{port}/{{name}}"))

    with pytest.raises(SinkError) as caught:
        write(sink)

    assert caught.value.code == "sink.http.unreachable"
    assert caught.value.retryable is True


def test_secrets_stay_out_of_reprs() -> None:
    config = HttpSinkConfig(
        url="https://example.test/{name}", auth_header="X-Key", auth_value=SecretStr(TOKEN)
    )
    assert TOKEN not in repr(config)
    assert TOKEN not in repr(HttpSink(config))
    assert TOKEN not in str(config.model_dump())


@pytest.mark.parametrize("path", ["acme/req.png", "a/b/c/d.png", "/a/b/c.png", "a/../c.png"])
def test_paths_that_are_not_tenant_campaign_file_are_refused(path: str) -> None:
    sink = HttpSink(HttpSinkConfig(url="http://127.0.0.1:9/{name}"))
    with pytest.raises(SinkError) as caught:
        write(sink, path=PurePosixPath(path))
    assert caught.value.code == "deliver.unsafe_path"


@pytest.mark.parametrize(
    "fields",
    [
        {"url": "http://example.test/{unknown}"},
        {"url": "http://{tenant}.example.test/x"},
        {"url": "ftp://example.test/{name}"},
        {"url": "http://example.test/{name"},
        {"url": "http://example.test/{name}", "auth_header": "X-Key"},
        {"url": "http://example.test/{name}", "auth_value": SecretStr("v")},
        {
            "url": "http://example.test/{name}",
            "auth_header": "X-Key",
            "auth_value": SecretStr("v"),
            "headers": {"x-key": "other"},
        },
        {"url": "http://example.test/{name}", "method": "PATCH"},
    ],
)
def test_bad_configs_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        HttpSinkConfig(**fields)


@pytest.mark.parametrize("padding", [150, 185, 190, 195, 199])
def test_a_token_at_the_excerpt_cut_is_masked_before_the_cut(
    receiver: ProviderServer, padding: int
) -> None:
    """Issue 12 #8: the excerpt was cut at 200 characters, then redacted: half a token leaked."""
    echo = "e" * padding + f" you sent {TOKEN} and {TOKEN.split()[1]!r}"
    receiver.script("PUT", "/upload/acme/spring/req-1.png", [Reply(status=400, body=echo.encode())])
    with pytest.raises(SinkError) as caught:
        write(sink_for(receiver))
    message = str(caught.value)
    assert caught.value.code == "sink.http.rejected"
    assert "tok-nev" not in message
    assert "e" * min(padding, 150) in message


# -- per-content keys and versions (issue 14 part 6) -------------------------------------------


def create(sink: HttpSink, path: PurePosixPath = PATH, data: bytes = b"png bytes") -> str:
    return asyncio.run(sink.create(path, data, "image/png"))


def test_the_idempotency_key_is_per_content_and_per_path() -> None:
    key = idempotency_key(PATH, b"one")
    content = hashlib.sha256(b"one").hexdigest()
    assert key == hashlib.sha256(f"{PATH}\n{content}".encode()).hexdigest()
    assert idempotency_key(PATH, b"one") == key  # a retry keeps its key
    assert idempotency_key(PATH, b"two") != key  # other bytes never reuse it
    assert idempotency_key(PurePosixPath("acme/spring/req-2.png"), b"one") != key
    assert len(key) == 64  # bounded, whatever the names


def test_a_retry_of_the_same_bytes_keeps_its_key_and_other_bytes_get_another(
    receiver: ProviderServer,
) -> None:
    receiver.script("PUT", "/upload/acme/spring/req-1.png", [Reply(status=503), Reply(status=201)])
    sink = sink_for(receiver)

    async def no_sleep(delay: float) -> None:
        return None

    asyncio.run(write_with_retry(lambda: sink.write(PATH, b"one", "image/png"), 3, 0.1, no_sleep))
    write(sink, data=b"two")

    keys = [seen.headers["idempotency-key"] for seen in receiver.requests]
    assert keys[0] == keys[1] == idempotency_key(PATH, b"one")
    assert keys[2] == idempotency_key(PATH, b"two") != keys[0]


def test_create_puts_with_if_none_match(receiver: ProviderServer) -> None:
    receiver.script("PUT", "/upload/acme/spring/req-1.png", [Reply(status=201)])

    location = create(sink_for(receiver), data=b"first")

    [seen] = receiver.requests
    assert seen.headers["if-none-match"] == "*"
    assert seen.headers["idempotency-key"] == idempotency_key(PATH, b"first")
    assert seen.body == b"first"
    assert location == receiver.url + "/upload/acme/spring/req-1.png"


def test_a_412_means_the_name_is_taken_and_is_not_retried(receiver: ProviderServer) -> None:
    receiver.script("PUT", "/upload/acme/spring/req-1.png", [Reply(status=412)])
    sink = sink_for(receiver)

    async def no_sleep(delay: float) -> None:
        return None

    with pytest.raises(SinkError) as caught:
        asyncio.run(
            write_with_retry(lambda: sink.create(PATH, b"b", "image/png"), 4, 0.1, no_sleep)
        )

    assert caught.value.code == PATH_TAKEN
    assert caught.value.retryable is False
    assert len(receiver.requests) == 1


def test_a_version_goes_to_its_own_url_with_its_own_key(receiver: ProviderServer) -> None:
    data = b"replayed bytes"
    version = version_path(PATH, hashlib.sha256(data).hexdigest())
    url_path = f"/upload/acme/spring/{version.name}"
    receiver.script("PUT", url_path, [Reply(status=201)])

    location = create(sink_for(receiver), path=version, data=data)

    [seen] = receiver.requests
    assert seen.path == url_path
    assert seen.headers["idempotency-key"] == idempotency_key(version, data)
    assert location == receiver.url + url_path


def test_request_id_placeholder_keeps_a_versions_content_mark(receiver: ProviderServer) -> None:
    """A template without {name} still sends the first delivery and a version to two URLs."""
    version = version_path(PATH, "ab" * 32)
    sink = sink_for(receiver, url=receiver.url + "/by-id/{request_id}")
    receiver.script("PUT", "/by-id/req-1", [Reply(status=201)])
    receiver.script("PUT", f"/by-id/req-1.{'ab' * 8}", [Reply(status=201)])

    create(sink)
    create(sink, path=version, data=b"other")

    assert [seen.path for seen in receiver.requests] == ["/by-id/req-1", f"/by-id/req-1.{'ab' * 8}"]


def test_a_post_create_sends_no_precondition(receiver: ProviderServer) -> None:
    """A POST names nothing, the receiver does: If-None-Match: * would mean nothing there."""
    receiver.script("POST", "/ingest", [Reply(status=201, headers={"Location": "/assets/7"})])

    location = create(sink_for(receiver, url=receiver.url + "/ingest", method="POST"))

    [seen] = receiver.requests
    assert "if-none-match" not in seen.headers
    assert seen.headers["idempotency-key"] == idempotency_key(PATH, b"png bytes")
    assert location == receiver.url + "/assets/7"
