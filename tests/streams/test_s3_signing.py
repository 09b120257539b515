"""SigV4 signing and S3 URLs shared by the blob store and the S3 delivery sink."""

from __future__ import annotations

from pydantic import SecretStr

from streams.blobs import S3BlobConfig
from streams.s3_signing import object_url, sign_request


def test_path_and_virtual_urls_quote_the_key() -> None:
    key = "blobs/ab/cd/a b+c"
    assert object_url("http://127.0.0.1:9000", "bkt", key) == (
        "http://127.0.0.1:9000/bkt/blobs/ab/cd/a%20b%2Bc"
    )
    assert object_url("https://s3.eu-west-3.amazonaws.com", "bkt", key, "virtual") == (
        "https://bkt.s3.eu-west-3.amazonaws.com/blobs/ab/cd/a%20b%2Bc"
    )


def test_every_given_header_is_signed_and_the_secret_never_appears() -> None:
    headers = {"Content-Type": "image/png", "If-None-Match": "*"}
    signed = sign_request(
        "AKIAEXAMPLE",
        SecretStr("very-secret-key"),
        "eu-west-3",
        "PUT",
        "http://127.0.0.1:9000/bkt/k",
        headers,
        b"data",
    )
    auth = signed["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/")
    assert "/eu-west-3/s3/aws4_request" in auth
    assert "content-type" in auth
    assert "if-none-match" in auth
    assert signed["If-None-Match"] == "*"
    assert "X-Amz-Date" in signed
    assert "very-secret-key" not in repr(signed)


def test_the_blob_store_bucket_url_follows_the_addressing() -> None:
    config = S3BlobConfig(
        endpoint_url="https://minio.example:9000",
        bucket="claims",
        access_key_id="k",
        secret_access_key=SecretStr("s"),
    )
    assert config.bucket_url() == "https://minio.example:9000/claims"
    virtual = S3BlobConfig(
        endpoint_url="https://s3.eu-west-3.amazonaws.com",
        bucket="claims",
        access_key_id="k",
        secret_access_key=SecretStr("top-secret-s3"),
        addressing="virtual",
        prefix="",
    )
    assert virtual.bucket_url() == "https://claims.s3.eu-west-3.amazonaws.com/"
    assert virtual.key_for("f" * 64) == f"ff/ff/{'f' * 64}"
    assert "top-secret-s3" not in repr(virtual)
    assert "top-secret-s3" not in str(virtual)
