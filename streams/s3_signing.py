"""SigV4 signing and addressing of S3 (and S3-compatible) requests, shared by every S3 client.

botocore only signs; the caller's httpx client carries the bytes, so the blob store (streams)
and the S3 delivery sink (agents/deliver/sinks/s3.py) share one signer and one URL rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal
from urllib.parse import quote, urlsplit

from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]
from pydantic import SecretStr

__all__ = ["Addressing", "object_url", "sign_request"]

Addressing = Literal["path", "virtual"]


def object_url(endpoint_url: str, bucket: str, key: str, addressing: Addressing = "path") -> str:
    """The request URL of ``key``: path-style ``endpoint/bucket/key`` or virtual-hosted."""
    quoted = quote(key, safe="/-_.~")
    if addressing == "path":
        return f"{endpoint_url}/{bucket}/{quoted}"
    parts = urlsplit(endpoint_url)
    return f"{parts.scheme}://{bucket}.{parts.netloc}/{quoted}"


def sign_request(
    access_key_id: str,
    secret_access_key: SecretStr,
    region: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, str]:
    """``headers`` plus SigV4's (Authorization, X-Amz-Date, X-Amz-Content-SHA256).

    Every header given is signed, so none of them can be changed without the store noticing.
    """
    credentials = Credentials(access_key_id, secret_access_key.get_secret_value())
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    S3SigV4Auth(credentials, "s3", region).add_auth(request)
    return {str(name): str(value) for name, value in request.headers.items()}
