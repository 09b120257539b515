"""Write a file so readers see either nothing or all of it, never a torn file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(target: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Temporary file in the same folder, then ``os.replace``: atomic on POSIX filesystems.

    ``mode`` is set explicitly because ``mkstemp`` creates 0600 files, which consumers running
    as another user could not read.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
