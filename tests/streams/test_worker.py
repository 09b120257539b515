"""Worker start-up tuning: the garbage collector's thresholds and frozen start-up heap."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.worker import tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restore_gc")
def test_tune_gc_freezes_the_start_up_heap_and_raises_gen0() -> None:
    gen1, gen2 = gc.get_threshold()[1:]
    tune_gc(12_345)
    assert gc.get_threshold() == (12_345, gen1, gen2)
    assert gc.get_freeze_count() > 0
