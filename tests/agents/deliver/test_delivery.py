"""deliver_approved: the asset lands in its place, or the request fails with a reason."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from urllib.parse import unquote, urlparse

from agents.deliver.delivery import deliver_approved
from agents.deliver.sinks import FilesystemSink
from streams.blobs import LocalBlobStore
from streams.records import (
    AssetKind,
    BlobRef,
    CompletionStatus,
    GenerationRequest,
    RawAsset,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)


def approved(blob: BlobRef, tenant: str = "acme") -> ValidatedAsset:
    request = GenerationRequest(
        request_id="r-1",
        idempotency_key="k",
        tenant=tenant,
        campaign_id="spring",
        kind=AssetKind.TEXT,
        prompt_template="hi",
    )
    raw = RawAsset(request=request, blob=blob, provider="offline", model_version="1", latency_ms=1)
    return ValidatedAsset(raw=raw, report=ValidationReport(verdict=Verdict.PASS))


def test_delivers_the_blob_bytes_to_the_layout(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    ref = blobs.put(b"hello", "text/plain; charset=utf-8")
    done = asyncio.run(deliver_approved(approved(ref), blobs, FilesystemSink(tmp_path / "out")))
    assert done.status is CompletionStatus.DELIVERED
    assert done.location is not None
    path = Path(unquote(urlparse(done.location).path))
    assert path == (tmp_path / "out" / "acme" / "spring" / "r-1.txt").resolve()
    assert path.read_bytes() == b"hello"
    assert done.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert done.reasons == []


def test_a_missing_blob_fails_the_request_with_its_code(tmp_path: Path) -> None:
    ref = LocalBlobStore(tmp_path / "elsewhere").put(b"gone", "text/plain")
    blobs = LocalBlobStore(tmp_path / "blobs")  # a store that never saw the blob
    done = asyncio.run(deliver_approved(approved(ref), blobs, FilesystemSink(tmp_path / "out")))
    assert done.status is CompletionStatus.FAILED
    assert done.location is None
    assert done.reasons[0].startswith("blob.missing: ")


def test_a_name_that_cannot_be_a_path_fails_the_request(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    ref = blobs.put(b"x", "text/plain")
    sink = FilesystemSink(tmp_path / "out")
    done = asyncio.run(deliver_approved(approved(ref, tenant=""), blobs, sink))
    assert done.status is CompletionStatus.FAILED
    assert done.reasons[0].startswith("deliver.unsafe_name: ")
    assert not (tmp_path / "out").exists()
