"""The Faust app the line runs: what it changes in Faust's own behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.app import create_faust_app
from streams.settings import Settings


def test_a_running_producer_is_handed_out_without_a_trip_round_the_event_loop(
    tmp_path: Path,
) -> None:
    # Faust's own version sleeps(0) three times per record sent: its producer buffer of table
    # writes then drained so slowly on a busy loop that it throttled every stream (issue 16).
    app = create_faust_app(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path))
    producer = app.producer
    producer._started.set()  # what start() sets once the producer runs; no broker needed here
    step = app.maybe_start_producer()
    with pytest.raises(StopIteration) as finished:  # it returned at the first step
        step.send(None)
    assert finished.value.value is producer
