"""Filesystem delivery: atomic (temp file + rename) and idempotent (same bytes -> no rewrite)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from pathlib import Path, PurePosixPath

from agents.deliver.sinks._base import SinkError, path_taken
from streams.atomic_file import write_atomic

_NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK})


class FilesystemSink:
    """Writes below ``root``; refuses any path that would resolve outside it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def target(self, path: PurePosixPath) -> Path:
        if path.is_absolute() or any(part in ("", ".", "..") for part in path.parts):
            raise SinkError("deliver.unsafe_path", f"refusing path {str(path)!r}", retryable=False)
        target = (self.root / path).resolve()
        if not target.is_relative_to(self.root):
            raise SinkError(
                "deliver.unsafe_path", f"{path} escapes the delivery root", retryable=False
            )
        return target

    async def write(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        # Written inline, not in a thread: a page-cache write of an asset takes tens of
        # microseconds, less than the thread hop would.
        target = self.target(path)
        try:
            if not _same_content(target, data):
                write_atomic(target, data)
        except OSError as exc:
            raise SinkError("deliver.write_failed", f"cannot write {path}: {exc}") from exc
        return target.as_uri()

    async def create(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        """Put ``data`` at ``path`` only if nothing is there, or the same bytes already are.

        The file appears with ``link(2)`` from a complete temporary file, which fails when the
        name exists: of two writers racing for one name, one wins and the other compares.
        """
        target = self.target(path)
        try:
            if not target.exists() and _link_new(target, data):
                return target.as_uri()
            if not _same_content(target, data):
                raise path_taken(path)
        except OSError as exc:
            raise SinkError("deliver.write_failed", f"cannot write {path}: {exc}") from exc
        return target.as_uri()


def _link_new(target: Path, data: bytes, mode: int = 0o644) -> bool:
    """Write ``data`` to a new file at ``target``; False when ``target`` appeared meanwhile."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600 files, which other users could not read
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            # A filesystem without hard links (some FUSE/SMB mounts): check, then rename. Only
            # a second writer of the same request in the same instant could slip in between.
            if target.exists():
                return False
            os.replace(tmp, target)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _same_content(target: Path, data: bytes) -> bool:
    try:
        if target.stat().st_size != len(data):
            return False
    except FileNotFoundError:
        return False
    return hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
