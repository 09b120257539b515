"""deliver_approved: the asset lands in its place, or the request fails with a reason."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from pathlib import Path
from urllib.parse import unquote, urlparse

from PIL import Image

from agents.deliver.deliver_one import deliver_approved
from agents.deliver.provenance import Labeller
from agents.deliver.sinks import FilesystemSink
from agents.policy import ProfileBook, load_profiles
from schemas.records import (
    AssetKind,
    BlobRef,
    CompletionStatus,
    GenerationRequest,
    RawAsset,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from streams.blobs import LocalBlobStore


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


# -- provenance labels ------------------------------------------------------------------------


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (228, 0, 43)).save(buffer, "PNG")
    return buffer.getvalue()


def _book(tmp_path: Path) -> ProfileBook:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "acme.yaml").write_text(
        'copyright: "(c) ACME"\ncreator: ACME Studio\nmetadata_keys: [persona]\n'
    )
    return load_profiles(folder)


def _branded(blob: BlobRef, kind: AssetKind) -> ValidatedAsset:
    asset = approved(blob)
    request = asset.raw.request.model_copy(
        update={
            "kind": kind,
            "brand_profile_id": "acme",
            "metadata": {"persona": "runner", "email": "a@b.c"},
        }
    )
    return asset.model_copy(update={"raw": asset.raw.model_copy(update={"request": request})})


def test_images_are_delivered_labelled_and_the_sha256_is_of_what_was_delivered(
    tmp_path: Path,
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    original = _png()
    ref = blobs.put(original, "image/png")
    label = Labeller(_book(tmp_path))
    done = asyncio.run(
        deliver_approved(
            _branded(ref, AssetKind.IMAGE), blobs, FilesystemSink(tmp_path / "out"), label
        )
    )
    assert done.status is CompletionStatus.DELIVERED
    assert done.location is not None
    delivered = Path(unquote(urlparse(done.location).path)).read_bytes()
    assert delivered != original
    assert done.sha256 == hashlib.sha256(delivered).hexdigest()
    with Image.open(io.BytesIO(delivered)) as image:
        assert image.text["Copyright"] == "(c) ACME"
        assert "trainedAlgorithmicMedia" in image.text["XML:com.adobe.xmp"]
        assert "runner" in image.text["XML:com.adobe.xmp"]
        assert "a@b.c" not in image.text["XML:com.adobe.xmp"]  # not an allowed key
        pixels = image.tobytes()
    with Image.open(io.BytesIO(original)) as image:
        assert image.tobytes() == pixels


def test_text_gets_a_sidecar_next_to_it(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    ref = blobs.put(b"Trail shoes.", "text/plain; charset=utf-8")
    done = asyncio.run(
        deliver_approved(
            _branded(ref, AssetKind.TEXT),
            blobs,
            FilesystemSink(tmp_path / "out"),
            Labeller(_book(tmp_path)),
        )
    )
    assert done.status is CompletionStatus.DELIVERED
    folder = tmp_path / "out" / "acme" / "spring"
    assert (folder / "r-1.txt").read_bytes() == b"Trail shoes."
    sidecar = json.loads((folder / "r-1.txt.json").read_text())
    assert sidecar["copyright"] == "(c) ACME"
    assert sidecar["digital_source_type"].endswith("trainedAlgorithmicMedia")


def test_an_image_that_cannot_be_labelled_is_not_delivered(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    ref = blobs.put(_png()[:40], "image/png")  # cut inside the first chunks
    done = asyncio.run(
        deliver_approved(
            _branded(ref, AssetKind.IMAGE),
            blobs,
            FilesystemSink(tmp_path / "out"),
            Labeller(_book(tmp_path)),
        )
    )
    assert done.status is CompletionStatus.FAILED
    assert done.reasons[0].startswith("deliver.metadata: ")
    assert not (tmp_path / "out" / "acme" / "spring" / "r-1.png").exists()
