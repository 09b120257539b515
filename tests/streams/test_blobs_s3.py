"""S3BlobStore against a real S3-compatible server: moto in server mode on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
import moto
import pytest
from pydantic import SecretStr

from assetline.dev.broker import free_port
from schemas.records import BlobRef
from streams.blobs import (
    BlobCorruptError,
    BlobEntry,
    BlobMissingError,
    BlobStore,
    BlobTooLargeError,
    BlobUnavailableError,
    LocalBlobStore,
    S3BlobConfig,
    S3BlobStore,
    open_blob_store,
)
from streams.settings import Settings
from tests.support.s3_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, moto_s3

ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


@dataclass
class Server:
    endpoint: str
    admin: Any  # botocore S3 client with the same keys, to look at (and tamper with) objects

    def config(self, bucket: str, **changes: Any) -> S3BlobConfig:
        self.admin.create_bucket(Bucket=bucket)
        return replace(
            S3BlobConfig(
                endpoint_url=self.endpoint,
                bucket=bucket,
                access_key_id=ACCESS_KEY_ID,
                secret_access_key=SecretStr(SECRET_ACCESS_KEY),
                prefix="claims",
                timeout_s=5.0,
            ),
            **changes,
        )


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with moto_s3(f"boot-{uuid.uuid4().hex[:8]}") as (endpoint, admin):
        yield Server(endpoint, admin)


@pytest.fixture
def config(server: Server) -> S3BlobConfig:
    return server.config(f"blobs-{uuid.uuid4().hex[:12]}")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keys(server: Server, bucket: str) -> list[str]:
    listed = server.admin.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def put_and_close(store: S3BlobStore, data: bytes, media_type: str) -> BlobRef:
    try:
        return await store.put_async(data, media_type)
    finally:
        await store.aclose()


async def get_and_close(store: S3BlobStore, ref: BlobRef, **kwargs: Any) -> bytes:
    try:
        return await store.get_async(ref, **kwargs)
    finally:
        await store.aclose()


def test_the_s3_store_is_a_blob_store(config: S3BlobConfig, tmp_path: Any) -> None:
    assert isinstance(S3BlobStore(config), BlobStore)
    assert isinstance(LocalBlobStore(tmp_path), BlobStore)


def test_put_then_get_from_another_worker(server: Server, config: S3BlobConfig) -> None:
    data = b"\x89PNG\r\n\x1a\n bytes of an image"
    ref = run(put_and_close(S3BlobStore(config), data, "image/png"))
    digest = sha(data)
    key = f"claims/{digest[:2]}/{digest[2:4]}/{digest}"
    assert ref == BlobRef(
        uri=f"s3://{config.bucket}/{key}", sha256=digest, size=len(data), media_type="image/png"
    )
    assert keys(server, config.bucket) == [key]
    stored = server.admin.get_object(Bucket=config.bucket, Key=key)
    assert stored["Body"].read() == data
    assert stored["ContentType"] == "image/png"
    # A worker that never wrote it (empty cache, another process) reads it by hash.
    assert run(get_and_close(S3BlobStore(config, cache_bytes=0), ref)) == data


def test_same_bytes_are_stored_once(server: Server, config: S3BlobConfig) -> None:
    first = run(put_and_close(S3BlobStore(config), b"same", "text/plain"))
    key = keys(server, config.bucket)[0]
    before = server.admin.head_object(Bucket=config.bucket, Key=key)
    second = run(put_and_close(S3BlobStore(config), b"same", "text/markdown"))
    after = server.admin.head_object(Bucket=config.bucket, Key=key)
    assert second.sha256 == first.sha256
    assert second.uri == first.uri
    assert second.media_type == "text/markdown"
    assert keys(server, config.bucket) == [key]
    assert after["ETag"] == before["ETag"]
    assert after["LastModified"] == before["LastModified"]  # fresh: not written again


def test_an_old_blob_put_again_is_written_again(server: Server, config: S3BlobConfig) -> None:
    """A new claim check for old bytes must keep them as long as a fresh blob would."""
    ref = run(put_and_close(S3BlobStore(config), b"old bytes", "text/plain"))
    key = config.key_for(ref.sha256)
    server.admin.put_object(  # the same bytes, marked so that a rewrite shows
        Bucket=config.bucket, Key=key, Body=b"old bytes", Metadata={"mark": "before"}
    )
    written = server.admin.head_object(Bucket=config.bucket, Key=key)["LastModified"]
    fresh = S3BlobStore(config, refresh_after_s=3600, clock=lambda: written + timedelta(hours=1))
    run(put_and_close(fresh, b"old bytes", "text/plain"))
    assert server.admin.head_object(Bucket=config.bucket, Key=key)["Metadata"] == {"mark": "before"}
    later = S3BlobStore(config, refresh_after_s=3600, clock=lambda: written + timedelta(hours=2))
    run(put_and_close(later, b"old bytes", "text/plain"))
    after = server.admin.head_object(Bucket=config.bucket, Key=key)
    assert after["Metadata"] == {"sha256": ref.sha256}  # written again, so re-stamped
    assert after["LastModified"] >= written
    assert keys(server, config.bucket) == [key]


def test_sync_put_and_get(server: Server, config: S3BlobConfig) -> None:
    store = S3BlobStore(config, cache_bytes=0)
    try:
        ref = store.put(b"parked dead letter", "application/octet-stream")
        assert store.get(ref) == b"parked dead letter"
        with pytest.raises(BlobMissingError):
            store.get(replace_sha(ref, b"never stored"))
    finally:
        run(store.aclose())


def replace_sha(ref: BlobRef, data: bytes) -> BlobRef:
    return ref.model_copy(update={"sha256": sha(data), "size": len(data)})


def test_missing_blob(config: S3BlobConfig) -> None:
    ref = BlobRef(uri="s3://x/y", sha256=sha(b"nothing"), size=7, media_type="text/plain")
    with pytest.raises(BlobMissingError) as caught:
        run(get_and_close(S3BlobStore(config), ref))
    assert caught.value.code == "blob.missing"


def test_a_tampered_object_is_corrupt(server: Server, config: S3BlobConfig) -> None:
    ref = run(put_and_close(S3BlobStore(config), b"original", "text/plain"))
    key = config.key_for(ref.sha256)
    server.admin.put_object(Bucket=config.bucket, Key=key, Body=b"tampered")  # same length
    with pytest.raises(BlobCorruptError) as caught:
        run(get_and_close(S3BlobStore(config, cache_bytes=0), ref))
    assert caught.value.code == "blob.corrupt"


def test_an_object_longer_than_its_claim_check_is_corrupt_and_not_read_whole(
    server: Server, config: S3BlobConfig
) -> None:
    ref = run(put_and_close(S3BlobStore(config), b"short", "text/plain"))
    key = config.key_for(ref.sha256)
    server.admin.put_object(Bucket=config.bucket, Key=key, Body=b"x" * 1_000_000)
    with pytest.raises(BlobCorruptError):
        run(get_and_close(S3BlobStore(config, cache_bytes=0), ref))


def test_a_claim_check_for_other_bytes_is_not_trusted(config: S3BlobConfig) -> None:
    ref = run(put_and_close(S3BlobStore(config), b"real bytes", "text/plain"))
    forged = ref.model_copy(update={"sha256": sha(b"other bytes")})
    with pytest.raises(BlobMissingError):
        run(get_and_close(S3BlobStore(config, cache_bytes=0), forged))


def test_caps_refuse_before_writing_or_reading(server: Server, config: S3BlobConfig) -> None:
    with pytest.raises(BlobTooLargeError) as caught:
        run(S3BlobStore(config).put_async(b"x" * 11, "text/plain", max_bytes=10))
    assert caught.value.code == "asset.too_large"
    assert keys(server, config.bucket) == []
    ref = run(put_and_close(S3BlobStore(config), b"y" * 50, "text/plain"))
    with pytest.raises(BlobTooLargeError):
        run(get_and_close(S3BlobStore(config, cache_bytes=0), ref, max_bytes=49))
    assert run(get_and_close(S3BlobStore(config, cache_bytes=0), ref, max_bytes=50)) == b"y" * 50


@pytest.mark.parametrize("address", ["../../etc/passwd", "ABC", "a" * 63, ""])
def test_non_hex_addresses_are_missing(config: S3BlobConfig, address: str) -> None:
    ref = BlobRef(uri="s3://x/y", sha256=address, size=1, media_type="text/plain")
    with pytest.raises(BlobMissingError):
        run(get_and_close(S3BlobStore(config), ref))


def test_wrong_secret_is_unavailable_and_never_shown(server: Server, config: S3BlobConfig) -> None:
    session = botocore.session.get_session()
    iam = session.create_client(
        "iam",
        region_name="us-east-1",
        endpoint_url=server.endpoint,
        aws_access_key_id="boot",
        aws_secret_access_key="boot",
    )
    user = f"blobs-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    good = replace(
        config,
        access_key_id=key["AccessKeyId"],
        secret_access_key=SecretStr(key["SecretAccessKey"]),
        attempts=1,
    )
    bad = replace(good, secret_access_key=SecretStr("wrong-secret-xyz"))
    previous = moto.settings.INITIAL_NO_AUTH_ACTION_COUNT
    moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # every request is checked now
    try:
        assert run(put_and_close(S3BlobStore(good), b"data", "text/plain")).size == 4
        with pytest.raises(BlobUnavailableError) as caught:
            run(put_and_close(S3BlobStore(bad), b"other data", "text/plain"))
    finally:
        moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = previous
    assert "HTTP 403" in str(caught.value)
    assert "wrong-secret-xyz" not in str(caught.value)
    assert "wrong-secret-xyz" not in repr(S3BlobStore(bad))


def test_unreachable_store_fails_within_its_bounds(config: S3BlobConfig) -> None:
    down = replace(config, endpoint_url=f"http://127.0.0.1:{free_port()}", attempts=2)
    ref = BlobRef(uri="s3://x/y", sha256=sha(b"z"), size=1, media_type="text/plain")
    with pytest.raises(BlobUnavailableError) as caught:
        run(get_and_close(S3BlobStore(down), ref))
    assert caught.value.code == "blob.unavailable"
    assert "after 2 attempts" in str(caught.value)


def test_entries_list_the_blobs_under_the_prefix_only(server: Server, config: S3BlobConfig) -> None:
    store = S3BlobStore(config)
    datas = [f"blob {i}".encode() for i in range(5)]
    for data in datas:
        run(store.put_async(data, "text/plain"))
    server.admin.put_object(Bucket=config.bucket, Key="claims/readme.txt", Body=b"stranger")
    server.admin.put_object(Bucket=config.bucket, Key=f"elsewhere/{sha(b'q')}", Body=b"q")

    async def listed() -> list[BlobEntry]:
        try:
            return [entry async for entry in store.entries()]
        finally:
            await store.aclose()

    entries = run(listed())
    assert sorted(e.sha256 for e in entries) == sorted(sha(d) for d in datas)
    assert all(e.size == 6 and e.modified.tzinfo is not None for e in entries)


def test_delete_if_older_rechecks_the_time(server: Server, config: S3BlobConfig) -> None:
    store = S3BlobStore(config)
    ref = run(store.put_async(b"to go", "text/plain"))
    past = datetime.now(UTC) - timedelta(days=1)
    assert run(store.delete_if_older(ref.sha256, past)) is None  # written after the cutoff
    assert keys(server, config.bucket) != []
    future = datetime.now(UTC) + timedelta(minutes=5)
    deleted = run(store.delete_if_older(ref.sha256, future))
    assert deleted is not None
    assert deleted.sha256 == ref.sha256
    assert deleted.size == 5
    assert keys(server, config.bucket) == []
    assert run(store.delete_if_older(ref.sha256, future)) is None  # gone: no error
    with pytest.raises(BlobMissingError):
        run(get_and_close(store, ref))  # the cache forgot it too


def test_settings_choose_the_store(tmp_path: Any) -> None:
    local = open_blob_store(Settings(blob_dir=tmp_path / "b"))
    assert isinstance(local, LocalBlobStore)
    s3 = open_blob_store(
        Settings(
            blob_store="s3",
            blob_s3_endpoint_url="http://127.0.0.1:9000/",
            blob_s3_bucket="line-blobs",
            blob_s3_prefix="/a//b/",
            blob_s3_access_key_id="AKIA",
            blob_s3_secret_access_key=SecretStr("s"),
            blob_s3_timeout_s=2.0,
        )
    )
    assert isinstance(s3, S3BlobStore)
    assert s3.config.endpoint_url == "http://127.0.0.1:9000"
    assert s3.config.prefix == "a/b"
    assert s3.config.timeout_s == 2.0
    assert s3.config.key_for("a" * 64) == f"a/b/aa/aa/{'a' * 64}"


def test_s3_settings_need_a_bucket_and_keys() -> None:
    with pytest.raises(ValueError, match="blob_s3_bucket, blob_s3_access_key_id"):
        Settings(blob_store="s3", blob_s3_secret_access_key=SecretStr("top-secret-1"))
    with pytest.raises(ValueError) as caught:
        Settings(blob_store="s3", blob_s3_bucket="b", blob_s3_access_key_id="k")
    assert "blob_s3_secret_access_key" in str(caught.value)
