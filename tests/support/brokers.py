"""A broker a test owns, and the settings of one isolated line on a broker.

Tests that stop and start their broker (or need one with other listeners) cannot use the
session's shared broker; :func:`running` and :func:`own_broker` start theirs and always kill
it. :func:`line_settings_for` is the one place an isolated line's settings are written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assetline.dev.broker import LocalBroker, free_ports
from streams.settings import Settings


@contextmanager
def running(broker: LocalBroker, timeout: float = 120) -> Iterator[LocalBroker]:
    """``broker`` started (up to ``timeout`` s), killed when the block ends however it ends.

    Killed, not stopped: its data is thrown away with the test's folder, so a clean shutdown
    buys nothing, and the session broker's took 14 s with the suite's topics on it.
    """
    broker.up(timeout=timeout)
    try:
        yield broker
    finally:
        broker.kill()


@contextmanager
def own_broker(root: Path, timeout: float = 120) -> Iterator[LocalBroker]:
    """A plain local broker in ``root`` on free ports, running for the block."""
    port, controller_port = free_ports(2)
    with running(LocalBroker(root, port=port, controller_port=controller_port), timeout) as b:
        yield b


def line_settings_for(
    bootstrap: str, tmp_path: Path, *, prefix: str = "test", **overrides: Any
) -> Settings:
    """Settings for one isolated line: uuid-named topics and group, folders under ``tmp_path``.

    Short session and commit intervals so tests see rebalances and commits quickly;
    ``overrides`` add or replace fields (security settings, for instance).
    """
    uid = uuid.uuid4().hex[:12]
    (web_port,) = free_ports(1)
    fields: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "app_id": f"{prefix}-{uid}",
        "topic_prefix": f"{prefix}-{uid}",
        "topic_partitions": 3,
        "blob_dir": tmp_path / "blobs",
        "delivery_dir": tmp_path / "delivery",
        "data_dir": tmp_path / "worker",
        "web_port": web_port,
        "session_timeout_s": 6.0,
        "heartbeat_interval_s": 0.5,
        "commit_interval_s": 0.5,
        "log_level": "info",
    }
    fields.update(overrides)
    return Settings(**fields)
