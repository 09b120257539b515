"""Filesystem sink: atomic, idempotent, and never writes outside its root."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path, PurePosixPath

import pytest

from agents.deliver.layout import delivery_path
from agents.deliver.sinks import PATH_TAKEN, FilesystemSink, Sink, SinkError


def write(sink: FilesystemSink, path: str | PurePosixPath, data: bytes) -> str:
    return asyncio.run(sink.write(PurePosixPath(path), data, "image/png"))


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_is_a_sink() -> None:
    sink: Sink = FilesystemSink(Path("unused"))
    assert callable(sink.write)
    assert callable(sink.create)


def test_writes_below_the_root_and_returns_a_file_uri(tmp_path: Path) -> None:
    root = tmp_path / "delivery"
    sink = FilesystemSink(root)
    location = write(sink, "acme/spring/req-1.png", b"png bytes")
    target = root / "acme" / "spring" / "req-1.png"
    assert target.read_bytes() == b"png bytes"
    assert location == target.resolve().as_uri()
    assert files_under(root) == [target]


def test_writes_a_delivery_path(tmp_path: Path) -> None:
    sink = FilesystemSink(tmp_path)
    path = delivery_path("../acme", "c/1", ".r", "text/plain")
    write(sink, path, b"text")
    assert (tmp_path / "%2E.%2Facme" / "c%2F1" / "%2Er.txt").read_bytes() == b"text"


def test_same_bytes_twice_is_not_rewritten(tmp_path: Path) -> None:
    sink = FilesystemSink(tmp_path)
    first = write(sink, "t/c/r.png", b"identical")
    target = tmp_path / "t" / "c" / "r.png"
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    before = target.stat()
    second = write(sink, "t/c/r.png", b"identical")
    after = target.stat()
    assert second == first
    assert after.st_ino == before.st_ino
    assert after.st_mtime_ns == before.st_mtime_ns == 1_000_000_000
    assert files_under(tmp_path) == [target]


def test_different_bytes_replace_the_file(tmp_path: Path) -> None:
    sink = FilesystemSink(tmp_path)
    write(sink, "t/c/r.png", b"version one")
    target = tmp_path / "t" / "c" / "r.png"
    before = target.stat()
    write(sink, "t/c/r.png", b"version two")  # same size, different bytes
    assert target.read_bytes() == b"version two"
    assert target.stat().st_ino != before.st_ino  # a new file was renamed into place
    write(sink, "t/c/r.png", b"v3")  # different size
    assert target.read_bytes() == b"v3"
    assert files_under(tmp_path) == [target]


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    sink = FilesystemSink(tmp_path)
    for i in range(10):
        write(sink, f"t/c/r{i % 3}.png", bytes([i]) * 10)
    names = [p.name for p in files_under(tmp_path)]
    assert sorted(names) == ["r0.png", "r1.png", "r2.png"]


def test_failed_rename_leaves_no_temporary_file_and_is_a_sink_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = FilesystemSink(tmp_path)

    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(SinkError, match="No space left") as info:
        write(sink, "t/c/r.png", b"data")
    assert info.value.code == "deliver.write_failed"
    assert info.value.retryable is True
    assert files_under(tmp_path) == []


def test_a_directory_in_the_way_is_a_write_failure(tmp_path: Path) -> None:
    (tmp_path / "t" / "c" / "r.png").mkdir(parents=True)
    with pytest.raises(SinkError) as info:
        write(FilesystemSink(tmp_path), "t/c/r.png", b"data")
    assert info.value.code == "deliver.write_failed"


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "/tmp/x", "../escape.png", "t/../../escape.png", "t/c/..", ".."],
)
def test_absolute_and_dotdot_paths_are_refused(tmp_path: Path, path: str) -> None:
    root = tmp_path / "root"
    sink = FilesystemSink(root)
    with pytest.raises(SinkError) as info:
        write(sink, path, b"evil")
    assert info.value.code == "deliver.unsafe_path"
    assert info.value.retryable is False
    assert files_under(tmp_path) == []


def test_dotdot_that_stays_inside_is_still_refused(tmp_path: Path) -> None:
    """Refused by rule, not by where it lands: '..' never appears in a delivery path."""
    sink = FilesystemSink(tmp_path)
    with pytest.raises(SinkError):
        sink.target(PurePosixPath("a/../b.png"))


def test_symlinked_folder_pointing_outside_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "tenant").symlink_to(outside, target_is_directory=True)
    sink = FilesystemSink(root)
    with pytest.raises(SinkError, match="escapes the delivery root") as info:
        write(sink, "tenant/c/r.png", b"evil")
    assert info.value.code == "deliver.unsafe_path"
    assert list(outside.iterdir()) == []


def test_symlinked_file_pointing_outside_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "t" / "c").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    (root / "t" / "c" / "r.png").symlink_to(victim)
    with pytest.raises(SinkError) as info:
        write(FilesystemSink(root), "t/c/r.png", b"overwrite")
    assert info.value.code == "deliver.unsafe_path"
    assert victim.read_bytes() == b"keep me"


def test_symlink_that_stays_inside_the_root_is_allowed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    location = write(FilesystemSink(root), "alias/r.png", b"ok")
    assert (root / "real" / "r.png").read_bytes() == b"ok"
    assert location == (root / "real" / "r.png").resolve().as_uri()


def test_root_itself_may_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real-root"
    real.mkdir()
    link = tmp_path / "link-root"
    link.symlink_to(real, target_is_directory=True)
    write(FilesystemSink(link), "t/c/r.png", b"ok")
    assert (real / "t" / "c" / "r.png").read_bytes() == b"ok"


def test_target_resolves_inside_the_root(tmp_path: Path) -> None:
    sink = FilesystemSink(tmp_path)
    target = sink.target(PurePosixPath("t/c/r.png"))
    assert target == tmp_path.resolve() / "t" / "c" / "r.png"
    assert target.is_relative_to(sink.root)


# -- create: never replace other bytes (issue 14 part 6) ---------------------------------------


def create(sink: FilesystemSink, path: str, data: bytes) -> str:
    return asyncio.run(sink.create(PurePosixPath(path), data, "image/png"))


def test_create_writes_a_new_file_readable_by_others(tmp_path: Path) -> None:
    sink = FilesystemSink(tmp_path)
    location = create(sink, "t/c/r.png", b"first")
    target = tmp_path / "t" / "c" / "r.png"
    assert target.read_bytes() == b"first"
    assert location == target.resolve().as_uri()
    assert target.stat().st_mode & 0o777 == 0o644
    assert files_under(tmp_path) == [target]  # the temporary file is gone


def test_create_of_the_same_bytes_again_leaves_the_file_alone(tmp_path: Path) -> None:
    sink = FilesystemSink(tmp_path)
    first = create(sink, "t/c/r.png", b"same")
    target = tmp_path / "t" / "c" / "r.png"
    before = target.stat()
    assert create(sink, "t/c/r.png", b"same") == first
    assert target.stat().st_ino == before.st_ino
    assert files_under(tmp_path) == [target]


@pytest.mark.parametrize("other", [b"diff", b"a different size"])
def test_create_refuses_to_replace_other_bytes(tmp_path: Path, other: bytes) -> None:
    sink = FilesystemSink(tmp_path)
    create(sink, "t/c/r.png", b"same")
    with pytest.raises(SinkError) as info:
        create(sink, "t/c/r.png", other)
    assert info.value.code == PATH_TAKEN
    assert info.value.retryable is False
    assert (tmp_path / "t" / "c" / "r.png").read_bytes() == b"same"
    assert files_under(tmp_path) == [tmp_path / "t" / "c" / "r.png"]


def test_create_losing_a_race_compares_instead_of_replacing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer's file appears between the check and the link: link(2) refuses it."""
    sink = FilesystemSink(tmp_path)
    target = tmp_path / "t" / "c" / "r.png"
    real_link = os.link

    def racing_link(src: str, dst: str) -> None:
        target.write_bytes(b"theirs")
        real_link(src, dst)

    monkeypatch.setattr(os, "link", racing_link)
    with pytest.raises(SinkError) as info:
        create(sink, "t/c/r.png", b"mine!!")
    assert info.value.code == PATH_TAKEN
    assert target.read_bytes() == b"theirs"
    target.write_bytes(b"mine!!")  # and a racer with the same bytes is a success
    assert create(sink, "t/c/r.png", b"mine!!") == target.resolve().as_uri()
    assert files_under(tmp_path) == [target]


def test_create_without_hard_links_falls_back_to_a_checked_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    sink = FilesystemSink(tmp_path)
    create(sink, "t/c/r.png", b"first")
    with pytest.raises(SinkError) as info:
        create(sink, "t/c/r.png", b"other")
    assert info.value.code == PATH_TAKEN
    assert (tmp_path / "t" / "c" / "r.png").read_bytes() == b"first"
    assert files_under(tmp_path) == [tmp_path / "t" / "c" / "r.png"]


def test_create_on_a_full_disk_is_a_retryable_write_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "link", full_disk)
    with pytest.raises(SinkError, match="No space left") as info:
        create(FilesystemSink(tmp_path), "t/c/r.png", b"data")
    assert info.value.code == "deliver.write_failed"
    assert info.value.retryable is True
    assert files_under(tmp_path) == []


def test_create_refuses_unsafe_paths(tmp_path: Path) -> None:
    with pytest.raises(SinkError) as info:
        create(FilesystemSink(tmp_path / "root"), "../escape.png", b"evil")
    assert info.value.code == "deliver.unsafe_path"
    assert files_under(tmp_path) == []
