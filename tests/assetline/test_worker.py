"""The worker process's own setup (not the line it runs)."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from assetline.worker import _Worker, build_line, freeze_startup_objects
from streams.settings import Settings


@pytest.fixture
def restored_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.mark.parametrize("log_level", ["warn", "error", "info"])
def test_debug_records_are_not_built_at_any_quiet_level(
    log_level: str, tmp_path: Path, restored_root_logger: None
) -> None:
    """Faust's spinner would set the root logger to DEBUG at WARN and above (the default)."""
    settings = Settings(data_dir=tmp_path / "data", log_level=log_level)
    loop = asyncio.new_event_loop()
    try:
        line = build_line(settings)
        worker = _Worker(
            line.app,
            log_repeat_interval_s=settings.log_repeat_interval_s,
            loglevel=settings.log_level,
            quiet=True,
            loop=loop,
        )
        worker._setup_logging()
        for name in ("aiokafka.conn", "faust.topics", "assetline"):
            assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
        assert logging.getLogger().getEffectiveLevel() == logging.getLevelName(
            log_level.upper().replace("WARN", "WARNING")
        )
    finally:
        loop.close()


def test_the_start_is_frozen_out_of_later_collections_after_its_garbage_went() -> None:
    class Node:
        pass

    garbage = Node()
    garbage.cycle = garbage  # type: ignore[attr-defined]
    gone = weakref.ref(garbage)
    kept = Node()
    del garbage
    before = gc.get_freeze_count()
    try:
        freeze_startup_objects()
        assert gone() is None  # collected first: never frozen, never leaked
        assert gc.get_freeze_count() > before
        assert not any(obj is kept for obj in gc.get_objects())  # out of every generation
    finally:
        gc.unfreeze()
