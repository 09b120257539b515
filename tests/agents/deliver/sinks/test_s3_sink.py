"""S3 sink against a real S3-compatible server: moto in server mode on 127.0.0.1.

The server enforces SigV4 authentication (moto's ``INITIAL_NO_AUTH_ACTION_COUNT`` set to 0
after the IAM user and the bucket exist), so wrong keys and tampered signed headers are refused
by the server itself, not by a mock.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote

import botocore.session
import httpx
import moto.settings
import pytest
from moto.server import ThreadedMotoServer
from pydantic import SecretStr, ValidationError

from agents.deliver.layout import delivery_path, version_path
from agents.deliver.sinks import PATH_TAKEN, S3Config, S3Sink, Sink, SinkError
from agents.deliver.sinks.s3 import object_url, put_headers, sign
from assetline.dev.broker import free_port
from tests.support.provider_server import ProviderServer, Reply, provider_server

BUCKET = "assets"
SECRET = "s3cr3t-never-shown"
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


@dataclass(frozen=True)
class Store:
    endpoint: str
    access_key_id: str
    secret_access_key: str
    admin: Any  # a botocore S3 client with the same keys, to read back what the sink wrote

    def config(self, **changes: Any) -> S3Config:
        fields: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "bucket": BUCKET,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "timeout_s": 10.0,
        }
        fields.update(changes)
        return S3Config(**fields)


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    previous = moto.settings.INITIAL_NO_AUTH_ACTION_COUNT
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        session = botocore.session.get_session()
        bootstrap = {"region_name": "us-east-1", "endpoint_url": endpoint}
        iam = session.create_client(
            "iam", aws_access_key_id="boot", aws_secret_access_key="boot", **bootstrap
        )
        iam.create_user(UserName="deliver")
        iam.put_user_policy(
            UserName="deliver", PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL)
        )
        key = iam.create_access_key(UserName="deliver")["AccessKey"]
        admin = session.create_client(
            "s3",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            **bootstrap,
        )
        admin.create_bucket(Bucket=BUCKET)
        moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # from now on every request is checked
        yield Store(endpoint, key["AccessKeyId"], key["SecretAccessKey"], admin)
    finally:
        moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = previous
        server.stop()


class Recorder:
    """An httpx event hook that remembers every request the sink sends."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def methods(self) -> list[str]:
        return [request.method for request in self.requests]


def run_write(
    config: S3Config,
    path: PurePosixPath,
    data: bytes,
    media_type: str = "image/png",
    metadata: dict[str, str] | None = None,
    recorder: Recorder | None = None,
) -> str:
    async def go() -> str:
        hooks: dict[str, list[Callable[..., Any]]] = {"request": [recorder]} if recorder else {}
        async with httpx.AsyncClient(event_hooks=hooks) as client:
            return await S3Sink(config, client).write(path, data, media_type, metadata or {})

    return asyncio.run(go())


def test_is_a_sink(store: Store) -> None:
    sink: Sink = S3Sink(store.config())
    assert callable(sink.write)
    assert callable(sink.create)


def test_writes_the_object_with_type_metadata_and_checksums(store: Store) -> None:
    data = b"\x89PNG fake image bytes" * 100
    path = delivery_path("acme", "spring/26", "req 1/../x", "image/png")
    recorder = Recorder()

    location = run_write(
        store.config(prefix="/deliveries/"),
        path,
        data,
        metadata={"Model": "gpt-image-1", "prompt": "a häst, 100% red"},
        recorder=recorder,
    )

    key = f"deliveries/{path}"
    assert location == f"s3://{BUCKET}/{key}"
    stored = store.admin.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert stored["Body"].read() == data
    assert stored["ContentType"] == "image/png"
    assert stored["Metadata"]["model"] == "gpt-image-1"
    assert unquote(stored["Metadata"]["prompt"]) == "a häst, 100% red"
    assert stored["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    # the server kept the SHA-256 checksum the sink sent, and it is the right one
    assert stored["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    put = recorder.requests[-1]
    assert put.method == "PUT"
    assert put.headers["Content-MD5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert put.headers["x-amz-content-sha256"] == hashlib.sha256(data).hexdigest()
    assert "content-md5" in put.headers["Authorization"].lower()


def test_a_second_write_of_the_same_bytes_does_not_upload_again(store: Store) -> None:
    path = PurePosixPath("acme/idem/req-1.png")
    first, second = Recorder(), Recorder()

    run_write(store.config(), path, b"same bytes", recorder=first)
    location = run_write(store.config(), path, b"same bytes", recorder=second)

    assert first.methods() == ["HEAD", "PUT"]
    assert second.methods() == ["HEAD"]
    assert location == f"s3://{BUCKET}/{path}"


def test_different_bytes_at_the_same_key_are_uploaded(store: Store) -> None:
    path = PurePosixPath("acme/idem/req-2.png")
    recorder = Recorder()

    run_write(store.config(), path, b"version one")
    run_write(store.config(), path, b"version two", recorder=recorder)

    assert recorder.methods() == ["HEAD", "PUT"]
    assert store.admin.get_object(Bucket=BUCKET, Key=str(path))["Body"].read() == b"version two"


def test_the_server_refuses_a_content_md5_changed_after_signing(store: Store) -> None:
    """Content-MD5 is a signed header: nobody on the way can swap it (or the bytes with it)."""
    config = store.config()
    data = b"payload"
    url = object_url(config, "acme/tamper/req.txt")
    headers = put_headers(data, "text/plain", {})
    assert headers["Content-MD5"] == base64.b64encode(hashlib.md5(data).digest()).decode()

    async def put(signed: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.put(url, headers=signed, content=data)

    tampered = sign(config, "PUT", url, headers, data)
    tampered["Content-MD5"] = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    refused = asyncio.run(put(tampered))
    accepted = asyncio.run(put(sign(config, "PUT", url, headers, data)))

    assert refused.status_code == 403
    assert b"SignatureDoesNotMatch" in refused.content
    assert accepted.status_code == 200


def test_wrong_credentials_are_denied_without_leaking_the_secret(store: Store) -> None:
    config = store.config(secret_access_key=SecretStr(SECRET))

    with pytest.raises(SinkError) as caught:
        run_write(config, PurePosixPath("acme/denied/req.png"), b"x")

    assert caught.value.code == "sink.s3.denied"
    assert caught.value.retryable is False
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(config)
    assert SECRET not in repr(S3Sink(config))


def test_an_unknown_access_key_is_denied(store: Store) -> None:
    config = store.config(access_key_id="AKIANOSUCHKEY0000000")

    with pytest.raises(SinkError) as caught:
        run_write(config, PurePosixPath("acme/denied/req.png"), b"x")

    assert caught.value.code == "sink.s3.denied"


def test_a_missing_bucket_is_a_final_error(store: Store) -> None:
    with pytest.raises(SinkError) as caught:
        run_write(store.config(bucket="no-such-bucket"), PurePosixPath("a/b/c.png"), b"x")

    assert caught.value.code == "sink.s3.no_bucket"
    assert caught.value.retryable is False


def test_an_unreachable_endpoint_is_retryable() -> None:
    config = S3Config(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        bucket=BUCKET,
        access_key_id="AKIAEXAMPLE",
        secret_access_key=SecretStr(SECRET),
        timeout_s=5.0,
    )

    with pytest.raises(SinkError) as caught:
        asyncio.run(S3Sink(config).write(PurePosixPath("a/b/c.png"), b"x", "image/png"))

    assert caught.value.code == "sink.s3.unreachable"
    assert caught.value.retryable is True
    assert SECRET not in str(caught.value)


def test_a_server_that_never_answers_times_out_retryably() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        config = S3Config(
            endpoint_url=f"http://127.0.0.1:{silent.getsockname()[1]}",
            bucket=BUCKET,
            access_key_id="AKIAEXAMPLE",
            secret_access_key=SecretStr(SECRET),
            timeout_s=0.3,
        )
        with pytest.raises(SinkError) as caught:
            asyncio.run(S3Sink(config).write(PurePosixPath("a/b/c.png"), b"x", "image/png"))

    assert caught.value.code == "sink.s3.timeout"
    assert caught.value.retryable is True


@pytest.fixture
def fake_store() -> Iterator[ProviderServer]:
    with provider_server() as server:
        yield server


def config_for(server: ProviderServer) -> S3Config:
    return S3Config(
        endpoint_url=server.url,
        bucket=BUCKET,
        access_key_id="AKIAEXAMPLE",
        secret_access_key=SecretStr(SECRET),
    )


@pytest.mark.parametrize(
    ("status", "body", "code", "retryable"),
    [
        (503, b"<Error><Code>SlowDown</Code></Error>", "sink.s3.throttled", True),
        (500, b"<Error><Code>InternalError</Code></Error>", "sink.s3.unavailable", True),
        (400, b"<Error><Code>BadDigest</Code></Error>", "sink.s3.bad_digest", True),
        (400, b"<Error><Code>InvalidArgument</Code></Error>", "sink.s3.rejected", False),
    ],
)
def test_put_failures_map_to_stable_codes(
    fake_store: ProviderServer, status: int, body: bytes, code: str, retryable: bool
) -> None:
    fake_store.script("HEAD", f"/{BUCKET}/a/b/c.png", [Reply(status=404)])
    fake_store.script("PUT", f"/{BUCKET}/a/b/c.png", [Reply(status=status, body=body)])

    with pytest.raises(SinkError) as caught:
        asyncio.run(
            S3Sink(config_for(fake_store)).write(PurePosixPath("a/b/c.png"), b"x", "image/png")
        )

    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert SECRET not in str(caught.value)


def test_a_head_that_fails_with_5xx_is_retryable(fake_store: ProviderServer) -> None:
    fake_store.script("HEAD", f"/{BUCKET}/a/b/c.png", [Reply(status=502)])

    with pytest.raises(SinkError) as caught:
        asyncio.run(
            S3Sink(config_for(fake_store)).write(PurePosixPath("a/b/c.png"), b"x", "image/png")
        )

    assert caught.value.code == "sink.s3.unavailable"
    assert caught.value.retryable is True
    assert [seen.method for seen in fake_store.requests] == ["HEAD"]


@pytest.mark.parametrize(
    "metadata",
    [{"bad name": "x"}, {"sha256": "forged"}, {"ünï": "x"}, {"big": "x" * 3000}],
)
def test_unusable_metadata_is_refused_before_sending(metadata: dict[str, str]) -> None:
    config = S3Config(
        endpoint_url="http://127.0.0.1:9",
        bucket=BUCKET,
        access_key_id="AKIAEXAMPLE",
        secret_access_key=SecretStr(SECRET),
    )

    with pytest.raises(SinkError) as caught:
        asyncio.run(S3Sink(config).write(PurePosixPath("a/b/c.png"), b"x", "image/png", metadata))

    assert caught.value.code == "sink.s3.bad_metadata"
    assert caught.value.retryable is False


def test_metadata_values_are_ascii_and_reversible() -> None:
    value = "line one\nhäst 100% \u200b"
    header = put_headers(b"x", "text/plain", {"Note": value})["x-amz-meta-note"]
    assert header.isascii()
    assert "\n" not in header
    assert unquote(header) == value


@pytest.mark.parametrize("path", ["/abs/x.png", "a/../x.png", "../x.png", "."])
def test_unsafe_paths_are_refused(path: str) -> None:
    config = S3Config(
        endpoint_url="http://127.0.0.1:9",
        bucket=BUCKET,
        access_key_id="AKIAEXAMPLE",
        secret_access_key=SecretStr(SECRET),
    )
    with pytest.raises(SinkError) as caught:
        asyncio.run(S3Sink(config).write(PurePosixPath(path), b"x", "image/png"))
    assert caught.value.code == "deliver.unsafe_path"


def test_urls_for_both_addressing_styles() -> None:
    common: dict[str, Any] = {
        "endpoint_url": "https://s3.example.test:8443/",
        "bucket": BUCKET,
        "access_key_id": "AKIAEXAMPLE",
        "secret_access_key": SecretStr(SECRET),
    }
    path_style = S3Config(**common)
    virtual = S3Config(**common, addressing="virtual")
    key = "acme/c%2F1/a b.png"
    assert (
        object_url(path_style, key) == "https://s3.example.test:8443/assets/acme/c%252F1/a%20b.png"
    )
    assert object_url(virtual, key) == "https://assets.s3.example.test:8443/acme/c%252F1/a%20b.png"


@pytest.mark.parametrize(
    "changes",
    [
        {"endpoint_url": "ftp://host"},
        {"endpoint_url": "http://host/some/path"},
        {"bucket": "Not_A_Bucket"},
        {"prefix": "a/../b"},
        {"timeout_s": 0},
    ],
)
def test_bad_configs_are_refused(changes: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "endpoint_url": "http://127.0.0.1:9",
        "bucket": BUCKET,
        "access_key_id": "AKIAEXAMPLE",
        "secret_access_key": SecretStr(SECRET),
    }
    fields.update(changes)
    with pytest.raises(ValidationError):
        S3Config(**fields)


# -- create: never replace an object holding other bytes (issue 14 part 6) ---------------------


def run_create(
    config: S3Config,
    path: PurePosixPath,
    data: bytes,
    recorder: Callable[[httpx.Request], Any] | None = None,
) -> str:
    async def go() -> str:
        hooks: dict[str, list[Callable[..., Any]]] = {"request": [recorder]} if recorder else {}
        async with httpx.AsyncClient(event_hooks=hooks) as client:
            return await S3Sink(config, client).create(path, data, "image/png")

    return asyncio.run(go())


def stored_body(store: Store, key: str) -> bytes:
    body: bytes = store.admin.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return body


def test_create_puts_a_new_object_conditionally(store: Store) -> None:
    path = PurePosixPath("acme/create/req-1.png")
    recorder = Recorder()

    location = run_create(store.config(), path, b"first", recorder)

    assert location == f"s3://{BUCKET}/{path}"
    assert recorder.methods() == ["HEAD", "PUT"]
    assert recorder.requests[-1].headers["If-None-Match"] == "*"
    assert stored_body(store, str(path)) == b"first"


def test_create_of_the_same_bytes_is_a_head(store: Store) -> None:
    path = PurePosixPath("acme/create/req-2.png")
    run_create(store.config(), path, b"same")
    recorder = Recorder()

    assert run_create(store.config(), path, b"same", recorder) == f"s3://{BUCKET}/{path}"
    assert recorder.methods() == ["HEAD"]


def test_create_leaves_an_object_with_other_bytes_alone(store: Store) -> None:
    path = PurePosixPath("acme/create/req-3.png")
    run_create(store.config(), path, b"first")
    recorder = Recorder()

    with pytest.raises(SinkError) as caught:
        run_create(store.config(), path, b"replayed", recorder)

    assert caught.value.code == PATH_TAKEN
    assert caught.value.retryable is False
    assert recorder.methods() == ["HEAD"]
    assert stored_body(store, str(path)) == b"first"


@pytest.mark.parametrize(("theirs", "taken"), [(b"theirs", True), (b"mine", False)])
def test_create_racing_another_writer_is_refused_by_the_store(
    store: Store, theirs: bytes, taken: bool
) -> None:
    """The object appears between the HEAD and the PUT: the store's 412 stops the PUT."""
    path = PurePosixPath(f"acme/race/req-{theirs.decode()}.png")
    recorder = Recorder()

    async def race(request: httpx.Request) -> None:
        await recorder(request)
        if request.method == "PUT" and recorder.methods().count("PUT") == 1:
            store.admin.put_object(
                Bucket=BUCKET,
                Key=str(path),
                Body=theirs,
                Metadata={"sha256": hashlib.sha256(theirs).hexdigest()},
            )

    if taken:
        with pytest.raises(SinkError) as caught:
            run_create(store.config(), path, b"mine", race)
        assert caught.value.code == PATH_TAKEN
    else:
        assert run_create(store.config(), path, b"mine", race) == f"s3://{BUCKET}/{path}"
    assert recorder.methods() == ["HEAD", "PUT", "HEAD"]
    assert stored_body(store, str(path)) == theirs


def test_create_and_write_keep_their_sha256_metadata(store: Store) -> None:
    """A version is a plain object: its own key, its own checksum, nothing to overwrite."""
    first = delivery_path("acme", "versions", "req", "image/png")
    data = b"second asset"
    version = version_path(first, hashlib.sha256(data).hexdigest())
    run_create(store.config(), first, b"first asset")
    run_create(store.config(), version, data)

    assert stored_body(store, str(first)) == b"first asset"
    stored = store.admin.get_object(Bucket=BUCKET, Key=str(version))
    assert stored["Body"].read() == data
    assert stored["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
