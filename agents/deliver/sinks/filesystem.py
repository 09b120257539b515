"""Filesystem delivery: atomic (temp file + rename) and idempotent (same bytes -> no rewrite)."""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

from agents.deliver.sinks._base import SinkError
from streams.atomic_file import write_atomic


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


def _same_content(target: Path, data: bytes) -> bool:
    try:
        if target.stat().st_size != len(data):
            return False
    except FileNotFoundError:
        return False
    return hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
