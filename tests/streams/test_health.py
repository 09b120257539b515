"""The pure parts of streams.health: the readiness decision, the probe's bookkeeping, lag and
queue depth arithmetic, and the long histogram buckets. The endpoints on a real worker and
broker are in tests/integration/test_health.py."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agents.inference.routing.metrics import CALL_SECONDS_BUCKETS
from streams.health import (
    BrokerProbe,
    BrokerStatus,
    RuntimeCollector,
    partition_lags,
    queue_depths,
    readiness,
)
from streams.metrics import STAGE_SECONDS_BUCKETS

TP = namedtuple("TP", "topic partition")

UP = BrokerStatus(reachable=True, checked_at=100.0, changed_at=50.0)
READY = {"joined": True, "rebalancing": False, "in_recovery": False, "partitions": 3}


def _ready(broker: BrokerStatus = UP, now: float = 101.0, **state: Any) -> Any:
    return readiness(broker, now=now, stale_after_s=30.0, **{**READY, **state})


def test_ready_when_broker_answers_and_rebalance_is_done() -> None:
    state = _ready()
    assert state.ready
    assert state.body() == {"ready": True, "reason": "ok", "partitions": 3, "idle": False}


def test_an_idle_member_with_no_partitions_is_ready() -> None:
    state = _ready(partitions=0)
    assert state.ready
    assert state.body()["idle"] is True


@pytest.mark.parametrize(
    ("broker", "now", "state", "reason"),
    [
        (BrokerStatus(), 101.0, {}, "broker not checked yet"),
        (UP, 200.0, {}, "broker check stale"),
        (
            BrokerStatus(reachable=False, checked_at=100.0, changed_at=90.0, error="refused"),
            101.0,
            {},
            "broker unreachable",
        ),
        (UP, 101.0, {"joined": False, "partitions": 0}, "not joined the consumer group yet"),
        (UP, 101.0, {"rebalancing": True, "in_recovery": True}, "table recovery in progress"),
        (UP, 101.0, {"rebalancing": True}, "rebalancing"),
    ],
)
def test_not_ready_reasons(
    broker: BrokerStatus, now: float, state: dict[str, Any], reason: str
) -> None:
    answer = _ready(broker, now, **state)
    assert not answer.ready
    assert answer.body()["reason"] == reason
    assert answer.body()["ready"] is False


def test_the_broker_comes_first_and_says_why_and_for_how_long() -> None:
    down = BrokerStatus(reachable=False, checked_at=100.0, changed_at=90.0, error="refused")
    body = _ready(down, 101.0, joined=False, rebalancing=True).body()
    assert body == {
        "ready": False,
        "reason": "broker unreachable",
        "error": "refused",
        "for_s": 11.0,
    }


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_probe_records_answers_failures_and_timeouts() -> None:
    clock = _Clock()
    outcome: dict[str, Any] = {"raise": None, "hang": False}

    async def ask() -> None:
        clock.now += 1.0
        if outcome["hang"]:
            await asyncio.Event().wait()
        if outcome["raise"] is not None:
            raise outcome["raise"]

    probe = BrokerProbe(
        ask, interval_s=5.0, timeout_s=0.05, secrets=["s3cret-pass-word"], clock=clock
    )
    assert probe.status.reachable is None

    async def scenario() -> list[BrokerStatus]:
        seen = []
        for setup in (
            {},
            {"raise": ConnectionRefusedError("refused, password s3cret-pass-word")},
            {"raise": None, "hang": True},
            {"hang": False},
        ):
            outcome.update(setup)
            status = await probe.check()
            seen.append(BrokerStatus(**vars(status)))
        return seen

    up, refused, hung, back = asyncio.run(scenario())
    assert up.reachable is True
    assert up.error == ""
    assert up.latency_s == 1.0
    assert refused.reachable is False
    assert refused.changed_at == 2.0
    assert refused.error.startswith("ConnectionRefusedError: refused")
    assert "s3cret-pass-word" not in refused.error
    assert hung.reachable is False
    assert "within 0.05s" in hung.error
    assert hung.changed_at == 2.0  # still down since the refusal
    assert back.reachable is True
    assert back.changed_at == back.checked_at == 4.0
    assert probe.stale_after_s == pytest.approx(3 * 5.05)


def test_partition_lags_are_highwater_minus_committed_for_stream_partitions() -> None:
    a0, a1, a2, log0 = TP("a", 0), TP("a", 1), TP("a", 2), TP("a-changelog", 0)
    highwaters = {a0: 10, a1: 5, log0: 99}

    def highwater(tp: Any) -> int | None:
        if tp == a2:
            raise AssertionError("partition not assigned")  # aiokafka's, mid-rebalance
        return highwaters.get(tp)

    lags = partition_lags(
        [a0, a1, a2, log0, TP("b", 0)],
        highwater=highwater,
        committed={a0: 4, a1: 7, a2: 1, log0: 0, TP("b", 0): None},
        is_changelog=lambda tp: tp.topic.endswith("-changelog"),
    )
    assert lags == {a0: 6, a1: 0}


def test_queue_depth_sums_each_distinct_queue_of_an_agents_actors() -> None:
    def actor(queue: Any) -> Any:
        return SimpleNamespace(stream=SimpleNamespace(channel=SimpleNamespace(_queue=queue)))

    q1, q2 = asyncio.Queue(), asyncio.Queue()
    for n in range(3):
        q1.put_nowait(n)
    q2.put_nowait(0)
    agents = {
        "generate": SimpleNamespace(_actors=[actor(q1), actor(q1), actor(q2)]),
        "deliver": SimpleNamespace(_actors=[actor(None)]),
    }
    assert queue_depths(agents) == {"generate": 4, "deliver": 0}


def test_runtime_gauges_before_the_app_runs() -> None:
    """Registered on a line that has not started: no consumer yet, nothing fails."""
    registry = CollectorRegistry()

    async def ask() -> None:
        return None

    probe = BrokerProbe(ask, interval_s=5.0, timeout_s=1.0)
    app = SimpleNamespace(_consumer=None, agents={}, rebalancing_count=0)
    registry.register(RuntimeCollector(app, probe))
    assert registry.get_sample_value("assetline_broker_reachable") == -1
    assert registry.get_sample_value("assetline_ready") == 0
    asyncio.run(probe.check())
    assert registry.get_sample_value("assetline_broker_reachable") == 1
    assert registry.get_sample_value("assetline_ready") == 0  # not joined yet


def test_histogram_buckets_reach_five_minutes_and_keep_the_small_ones() -> None:
    for buckets in (STAGE_SECONDS_BUCKETS, CALL_SECONDS_BUCKETS):
        assert list(buckets) == sorted(buckets)
        assert buckets[-1] == 300
        assert {60, 120} <= set(buckets)
    assert STAGE_SECONDS_BUCKETS[0] <= 0.001
    assert CALL_SECONDS_BUCKETS[0] <= 0.01
