"""deliver_approved: the asset lands in its place, or the request fails with a reason."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from PIL import Image

from agents.deliver.completion import completion
from agents.deliver.deliver_one import deliver_approved, earlier_completion, unlabelled
from agents.deliver.provenance import Labeller
from agents.deliver.sinks import FilesystemSink, Sink
from agents.policy import ProfileBook, load_profiles
from schemas.records import (
    AssetCompleted,
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
from streams.codecs import CodecError


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


# -- versions: replays never overwrite (issue 14 part 6) ---------------------------------------


def _at_attempt(asset: ValidatedAsset, attempt: int) -> ValidatedAsset:
    request = asset.raw.request.model_copy(update={"attempt": attempt})
    return asset.model_copy(update={"raw": asset.raw.model_copy(update={"request": request})})


def _file(done: AssetCompleted) -> Path:
    assert done.location is not None
    return Path(unquote(urlparse(done.location).path))


def _deliver(
    asset: ValidatedAsset,
    blobs: LocalBlobStore,
    sink: Sink,
    label: Labeller | None = None,
    earlier: AssetCompleted | None = None,
) -> AssetCompleted:
    done = asyncio.run(deliver_approved(asset, blobs, sink, label or unlabelled, earlier))
    assert done.status is CompletionStatus.DELIVERED, done.reasons
    return done


def test_a_replay_with_other_bytes_gets_a_version_and_the_first_file_stays(
    tmp_path: Path,
) -> None:
    """The stamp carries the attempt, so a replayed image is other bytes than the first."""
    blobs = LocalBlobStore(tmp_path / "blobs")
    asset = _branded(blobs.put(_png(), "image/png"), AssetKind.IMAGE)
    sink, label = FilesystemSink(tmp_path / "out"), Labeller(_book(tmp_path))

    first = _deliver(asset, blobs, sink, label)
    replayed = _deliver(_at_attempt(asset, 1001), blobs, sink, label, earlier=first)

    folder = (tmp_path / "out" / "acme" / "spring").resolve()
    assert replayed.sha256 != first.sha256
    assert replayed.sha256 is not None
    assert _file(first) == folder / "r-1.png"  # the first delivery's path is unchanged
    assert _file(replayed) == folder / f"r-1.{replayed.sha256[:16]}.png"
    for done in (first, replayed):
        assert hashlib.sha256(_file(done).read_bytes()).hexdigest() == done.sha256


def test_the_same_bytes_again_stay_in_place_without_a_version(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    asset = approved(blobs.put(b"same copy", "text/plain"))
    sink = FilesystemSink(tmp_path / "out")

    first = _deliver(asset, blobs, sink)
    again = _deliver(asset, blobs, sink)  # a redelivery after a crash: nothing in the ledger
    replayed = _deliver(_at_attempt(asset, 1001), blobs, sink, earlier=first)

    assert again.location == replayed.location == first.location
    assert [p.name for p in (tmp_path / "out" / "acme" / "spring").iterdir()] == ["r-1.txt"]


def test_other_bytes_without_a_ledger_entry_still_do_not_overwrite(tmp_path: Path) -> None:
    """The destination itself refuses (the ledger may not know: another worker, a lost disk)."""
    blobs = LocalBlobStore(tmp_path / "blobs")
    sink = FilesystemSink(tmp_path / "out")
    first = _deliver(approved(blobs.put(b"first copy", "text/plain")), blobs, sink)
    second = _deliver(approved(blobs.put(b"second copy", "text/plain")), blobs, sink)

    assert second.location != first.location
    assert _file(first).read_bytes() == b"first copy"
    assert _file(second).read_bytes() == b"second copy"
    assert _file(second).name == f"r-1.{hashlib.sha256(b'second copy').hexdigest()[:16]}.txt"


def test_a_sidecar_follows_its_version(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    sink, label = FilesystemSink(tmp_path / "out"), Labeller(_book(tmp_path))
    first = _deliver(_branded(blobs.put(b"v1", "text/plain"), AssetKind.TEXT), blobs, sink, label)
    asset = _at_attempt(_branded(blobs.put(b"v2", "text/plain"), AssetKind.TEXT), 1001)
    second = _deliver(asset, blobs, sink, label, earlier=first)

    for done, attempt in ((first, 1), (second, 1001)):
        sidecar = _file(done).with_name(_file(done).name + ".json")
        assert json.loads(sidecar.read_text())["attempt"] == attempt


class _Overwriting:
    """A destination that cannot refuse anything (an HTTP receiver ignoring If-None-Match)."""

    def __init__(self) -> None:
        self.objects: dict[PurePosixPath, bytes] = {}

    async def write(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        self.objects[path] = data
        return f"mem:///{path}"

    async def create(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        return await self.write(path, data, media_type)


def test_the_ledger_keeps_a_blind_destination_from_overwriting(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    sink = _Overwriting()
    a = approved(blobs.put(b"A", "text/plain"))
    b = _at_attempt(approved(blobs.put(b"B", "text/plain")), 1001)

    first = _deliver(a, blobs, sink)
    second = _deliver(b, blobs, sink, earlier=first)
    third = _deliver(_at_attempt(b, 2001), blobs, sink, earlier=second)  # B again

    base = PurePosixPath("acme/spring/r-1.txt")
    assert sink.objects[base] == b"A"
    assert first.location == f"mem:///{base}"
    assert second.location == third.location != first.location
    assert len(sink.objects) == 2


def test_an_earlier_failure_names_no_bytes(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    ref = blobs.put(b"x", "text/plain")
    failed = completion(approved(ref), CompletionStatus.FAILED, reasons=["stage.crashed"])
    done = _deliver(
        _at_attempt(approved(ref), 2), blobs, FilesystemSink(tmp_path / "out"), None, failed
    )
    assert _file(done).name == "r-1.txt"


def test_earlier_completion_decodes_the_ledger_entry_or_gives_none() -> None:
    def decode(value: bytes) -> AssetCompleted:
        if value == b"bad":
            raise CodecError("not avro")
        return AssetCompleted.model_validate_json(value)

    done = completion(
        approved(BlobRef(uri="file:///b", sha256="a" * 64, size=1, media_type="text/plain")),
        CompletionStatus.DELIVERED,
    )
    assert earlier_completion(None, decode) is None
    assert earlier_completion(b"bad", decode) is None
    assert earlier_completion(done.model_dump_json().encode(), decode) == done
