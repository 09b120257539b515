"""Rate limits shared across the group: every worker learns the live membership at each
rebalance (``assetline_group_members``) and takes that share of each provider's limit."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from assetline.dev.broker import free_ports
from assetline.dev.child_worker import WorkerProcess
from streams.settings import Settings

pytestmark = pytest.mark.integration


def _members(port: int) -> float | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for family in text_string_to_metric_families(text):
        if family.name == "assetline_group_members":
            return family.samples[0].value
    return None


def _wait_members(worker: WorkerProcess, want: float, timeout: float) -> float:
    port = worker.settings.web_port
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        assert worker.alive(), worker.log_tail()
        if _members(port) == want:
            return time.monotonic() - start
        time.sleep(0.3)
    raise AssertionError(f"members never {want} on :{port} ({_members(port)})\n{worker.log_tail()}")


def test_each_worker_knows_the_live_group_size(
    line_settings: Settings, start_worker: Callable[[Settings], WorkerProcess]
) -> None:
    first = start_worker(line_settings)
    _wait_members(first, 1, timeout=90)
    (port,) = free_ports(1)
    other = line_settings.model_copy(
        update={"web_port": port, "data_dir": line_settings.data_dir.with_name("worker-2")}
    )
    second = start_worker(other)
    took = max(_wait_members(first, 2, timeout=90), _wait_members(second, 2, timeout=90))
    print(f"\nboth workers counted 2 members {took:.1f}s after the second started")
    assert second.stop() == 0
    took = _wait_members(first, 1, timeout=90)
    print(f"the first counted 1 member again {took:.1f}s after the second stopped")
