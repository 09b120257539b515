"""Content-addressed blob store: atomic, deduplicated, hash-checked, bounded cache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from schemas.records import BlobRef
from streams.blobs import (
    BlobCorruptError,
    BlobError,
    BlobMissingError,
    BlobTooLargeError,
    LocalBlobStore,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_returns_a_claim_check_and_get_returns_the_bytes(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = b"\x89PNG\r\n\x1a\n fake image bytes"
    ref = store.put(data, "image/png")
    assert ref.sha256 == sha(data)
    assert ref.size == len(data)
    assert ref.media_type == "image/png"
    assert store.get(ref) == data


def test_blobs_live_at_root_ab_cd_sha(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = LocalBlobStore(root)
    data = b"hello"
    digest = sha(data)
    ref = store.put(data, "text/plain")
    path = root.resolve() / digest[:2] / digest[2:4] / digest
    assert store.path_for(digest) == path
    assert path.read_bytes() == data
    assert ref.uri == path.as_uri()
    assert ref.uri.startswith("file:///")
    assert files_under(root) == [path]


def test_same_bytes_are_stored_once(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = LocalBlobStore(root)
    first = store.put(b"same bytes", "text/plain")
    path = store.path_for(first.sha256)
    before = path.stat()
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # so any rewrite would show
    stamped = path.stat()
    assert stamped.st_mtime_ns == 1_000_000_000
    second = store.put(b"same bytes", "text/plain")
    third = LocalBlobStore(root).put(b"same bytes", "text/markdown")  # another process
    after = path.stat()
    assert second == first
    assert third.sha256 == first.sha256
    assert third.uri == first.uri
    assert third.media_type == "text/markdown"
    assert after.st_ino == before.st_ino  # never rewritten...
    # ...but re-stamped: the old file is referenced again, so retention counts from now
    assert after.st_mtime_ns > stamped.st_mtime_ns
    assert files_under(root) == [path]


def test_different_bytes_get_different_addresses(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    a = store.put(b"a", "text/plain")
    b = store.put(b"b", "text/plain")
    assert a.sha256 != b.sha256
    assert a.uri != b.uri
    assert store.get(a) == b"a"
    assert store.get(b) == b"b"


def test_empty_blob(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    ref = store.put(b"", "text/plain")
    assert ref.sha256 == sha(b"")
    assert ref.size == 0
    assert LocalBlobStore(tmp_path).get(ref) == b""


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = LocalBlobStore(root)
    refs = [store.put(bytes([i]) * (i + 1), "application/octet-stream") for i in range(20)]
    store.put(bytes([3]) * 4, "application/octet-stream")  # a duplicate
    names = [p.name for p in files_under(root)]
    assert not [n for n in names if n.startswith(".tmp-")]
    assert sorted(names) == sorted(r.sha256 for r in refs)


def test_failed_write_cleans_up_its_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "blobs"
    store = LocalBlobStore(root)

    def no_rename(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="No space left"):
        store.put(b"never lands", "text/plain")
    assert files_under(root) == []
    monkeypatch.undo()
    assert store.get(store.put(b"never lands", "text/plain")) == b"never lands"


def test_get_reads_from_disk_in_a_new_store(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    ref = LocalBlobStore(root).put(b"persisted", "text/plain")
    assert LocalBlobStore(root).get(ref) == b"persisted"


def test_get_verifies_the_hash(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    ref = LocalBlobStore(root).put(b"original", "text/plain")
    LocalBlobStore(root).path_for(ref.sha256).write_bytes(b"tampered")
    with pytest.raises(BlobCorruptError, match=ref.sha256) as info:
        LocalBlobStore(root).get(ref)
    assert info.value.code == "blob.corrupt"
    assert isinstance(info.value, BlobError)


def test_truncated_file_on_disk_is_corrupt(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    ref = LocalBlobStore(root).put(b"0123456789", "text/plain")
    LocalBlobStore(root).path_for(ref.sha256).write_bytes(b"01234")
    with pytest.raises(BlobCorruptError):
        LocalBlobStore(root).get(ref)


def test_a_claim_check_for_other_bytes_is_not_trusted(tmp_path: Path) -> None:
    """The ref's sha256 decides what is read; its URI is never followed."""
    root = tmp_path / "blobs"
    store = LocalBlobStore(root)
    real = store.put(b"real", "text/plain")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    forged = BlobRef(uri=outside.as_uri(), sha256=real.sha256, size=6, media_type="text/plain")
    assert LocalBlobStore(root).get(forged) == b"real"


def test_missing_blob(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    ref = BlobRef(uri="file:///nowhere", sha256=sha(b"never stored"), size=12, media_type="x/y")
    with pytest.raises(BlobMissingError, match="is not in") as info:
        store.get(ref)
    assert info.value.code == "blob.missing"
    assert isinstance(info.value, BlobError)


@pytest.mark.parametrize(
    "address",
    [
        "../../etc/passwd",
        "../" * 10 + "etc/passwd",
        "/etc/passwd",
        "",
        "ab",
        "A" * 64,  # upper-case hex is not an address we write
        "g" * 64,
        "a" * 63,
        "a" * 65,
        "a" * 64 + "\n",
        "ab/cd/" + "a" * 58,
    ],
)
def test_non_hex_addresses_are_missing_and_never_read(tmp_path: Path, address: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    store = LocalBlobStore(root)
    ref = BlobRef(uri="file:///etc/passwd", sha256=address, size=1, media_type="text/plain")
    with pytest.raises(BlobMissingError, match="not a sha256 address"):
        store.get(ref)
    with pytest.raises(BlobMissingError):
        store.path_for(address)


def test_traversal_address_cannot_reach_a_file_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "root"
    root.mkdir(parents=True)
    (tmp_path / "a" / "secret").write_bytes(b"secret")
    store = LocalBlobStore(root)
    ref = BlobRef(uri="file:///x", sha256="../../secret", size=6, media_type="text/plain")
    with pytest.raises(BlobMissingError):
        store.get(ref)


def test_cached_blobs_are_served_without_reading_disk(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, cache_bytes=1024)
    ref = store.put(b"cached", "text/plain")
    store.path_for(ref.sha256).unlink()
    assert store.get(ref) == b"cached"


def test_zero_cache_always_reads_disk(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, cache_bytes=0)
    ref = store.put(b"uncached", "text/plain")
    assert store.get(ref) == b"uncached"
    store.path_for(ref.sha256).unlink()
    with pytest.raises(BlobMissingError):
        store.get(ref)


def test_blob_larger_than_the_cache_is_not_cached(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, cache_bytes=10)
    ref = store.put(b"x" * 11, "text/plain")
    store.path_for(ref.sha256).unlink()
    with pytest.raises(BlobMissingError):
        store.get(ref)


def in_cache(store: LocalBlobStore, ref: BlobRef) -> bool:
    """Probe the cache from outside: remove the file; a cached blob is still served."""
    path = store.path_for(ref.sha256)
    saved = path.read_bytes()
    path.unlink()
    try:
        store.get(ref)
    except BlobMissingError:
        return False
    finally:
        path.write_bytes(saved)
    return True


def test_cache_eviction_respects_the_byte_budget(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, cache_bytes=100)
    refs = [store.put(bytes([i]) * 40, "application/octet-stream") for i in range(3)]
    # 3 x 40 bytes > 100: the oldest was evicted, the two newest (80 bytes) stay.
    assert store.cached_bytes <= 100
    assert store.cached_bytes == 80
    assert not in_cache(store, refs[0])
    assert in_cache(store, refs[1])
    assert in_cache(store, refs[2])


def test_cache_is_least_recently_used(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, cache_bytes=100)
    a = store.put(b"a" * 40, "x/y")
    b = store.put(b"b" * 40, "x/y")
    assert store.get(a) == b"a" * 40  # a is now more recent than b
    c = store.put(b"c" * 40, "x/y")  # evicts b, the least recently used
    assert store.cached_bytes == 80
    assert in_cache(store, a)
    assert not in_cache(store, b)
    assert in_cache(store, c)


def test_cache_budget_holds_under_many_puts_and_gets(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, cache_bytes=1000)
    refs = [store.put(os.urandom(37 + i % 50), "x/y") for i in range(200)]
    for ref in refs[::3]:
        store.get(ref)
        assert store.cached_bytes <= 1000
    assert store.cached_bytes == sum(len(v) for v in store._cache._blobs.values())


def test_a_blob_read_from_disk_is_cached_afterwards(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    ref = LocalBlobStore(root).put(b"warm me", "text/plain")
    reader = LocalBlobStore(root)
    assert reader.get(ref) == b"warm me"
    assert in_cache(reader, ref)


def test_root_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = LocalBlobStore(Path("relative/blobs"))
    assert store.root == (tmp_path / "relative" / "blobs").resolve()
    assert store.root.is_absolute()
    ref = store.put(b"x", "text/plain")
    assert ref.uri.startswith((tmp_path.resolve() / "relative").as_uri())


def test_put_over_the_cap_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """Issue 12 #4: the store holds each asset kind to its cap."""
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(BlobTooLargeError) as caught:
        store.put(b"x" * 101, "application/json", max_bytes=100)
    assert caught.value.code == "asset.too_large"
    assert isinstance(caught.value, BlobError)
    assert files_under(tmp_path) == []
    ref = store.put(b"x" * 100, "application/json", max_bytes=100)
    assert ref.size == 100


def test_get_over_the_cap_is_refused_by_the_file_size_before_reading(tmp_path: Path) -> None:
    data = b"y" * 5000
    ref = LocalBlobStore(tmp_path / "blobs").put(data, "text/plain")
    fresh = LocalBlobStore(tmp_path / "blobs")  # nothing cached: the file would be read
    with pytest.raises(BlobTooLargeError):
        fresh.get(ref, max_bytes=4999)
    assert fresh.get(ref, max_bytes=5000) == data
    with pytest.raises(BlobTooLargeError):  # and when it comes from the cache
        fresh.get(ref, max_bytes=10)
