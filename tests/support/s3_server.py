"""A real S3-compatible server on 127.0.0.1 (moto's), with one bucket, for delivery tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore.session
from moto.server import ThreadedMotoServer

from assetline.dev.broker import free_port

ACCESS_KEY_ID = "AKIATEST"
SECRET_ACCESS_KEY = "test-secret"


@contextmanager
def moto_s3(bucket: str) -> Iterator[tuple[str, Any]]:
    """``(endpoint URL, botocore S3 client)``; the server stops when the block ends.

    moto keeps buckets in process-wide state shared by every moto server in the process, so
    give each test a bucket name of its own when it lists the bucket.
    """
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = botocore.session.get_session().create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url=endpoint,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )
        client.create_bucket(Bucket=bucket)
        yield endpoint, client
    finally:
        server.stop()
