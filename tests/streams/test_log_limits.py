"""LogLimiter on a fake clock: repeats are counted, new causes and outages are never hidden."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from streams.log_limits import LogLimiter, install_log_limits


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[tuple[str, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, record.levelname, record.getMessage()))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def setup(clock: FakeClock) -> Iterator[tuple[LogLimiter, Capture]]:
    handler = Capture()
    report = logging.getLogger("test.log_limits.report")
    limiter = LogLimiter(interval_s=30.0, recovery_quiet_s=5.0, clock=clock, report=report)
    handler.addFilter(limiter)
    loggers = [report, *(logging.getLogger(n) for n in ("aiokafka", "test.log_limits.app"))]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    yield limiter, handler
    for logger in loggers:
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


CLIENT = logging.getLogger("aiokafka.client")
APP = logging.getLogger("test.log_limits.app.stage")


def refused(node: int = 1) -> None:
    CLIENT.error(
        "Unable connect to node with id %s: %s",
        node,
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9092)"),
    )


def test_a_repeated_client_error_is_one_line_per_interval_with_a_count(
    setup: tuple[LogLimiter, Capture], clock: FakeClock
) -> None:
    limiter, out = setup
    limiter.interval_s = 30.0
    CLIENT.error("Failed fetch messages from %s: %s", 1, TimeoutError("late"))
    for i in range(500):
        clock.now += 0.05
        CLIENT.error("Failed fetch messages from %s: %s", i % 3, TimeoutError(f"late {i}"))
    assert [m for _, _, m in out.lines] == ["Failed fetch messages from 1: late"]
    clock.now += 10.0  # 35 s after the first
    CLIENT.error("Failed fetch messages from %s: %s", 2, TimeoutError("late again"))
    assert (
        out.lines[-1][2] == "Failed fetch messages from 2: late again (500 similar in the last 35s)"
    )
    assert len(out.lines) == 2


def test_a_new_cause_is_shown_at_once(setup: tuple[LogLimiter, Capture], clock: FakeClock) -> None:
    _, out = setup
    for _ in range(5):
        CLIENT.error("Failed fetch messages from %s: %s", 1, TimeoutError("late"))
    CLIENT.error("Failed fetch messages from %s: %s", 1, PermissionError("denied"))  # other type
    CLIENT.warning("Failed fetch messages from %s: %s", 1, TimeoutError("late"))  # other level
    assert [m for _, _, m in out.lines] == [
        "Failed fetch messages from 1: late",
        "Failed fetch messages from 1: denied",
        "Failed fetch messages from 1: late",
    ]


def test_other_loggers_fold_only_exact_repeats(setup: tuple[LogLimiter, Capture]) -> None:
    _, out = setup
    for i in range(3):
        APP.error("request %s failed: %s", f"r-{i}", "provider.timeout")
    for _ in range(3):
        APP.error("request %s failed: %s", "r-9", "provider.timeout")
    assert [m for _, _, m in out.lines] == [
        "request r-0 failed: provider.timeout",
        "request r-1 failed: provider.timeout",
        "request r-2 failed: provider.timeout",
        "request r-9 failed: provider.timeout",
    ]


def test_object_addresses_do_not_make_a_new_cause(setup: tuple[LogLimiter, Capture]) -> None:
    _, out = setup
    for address in ("0x7f5318641cd0", "0x7f5318643e10", "0x7f53185b5190"):
        APP.error("Unclosed AIOKafkaConsumer\nconsumer: <AIOKafkaConsumer object at %s>", address)
    assert len(out.lines) == 1


def test_our_own_connection_warnings_are_one_cause_during_an_outage(
    setup: tuple[LogLimiter, Capture], clock: FakeClock
) -> None:
    limiter, out = setup
    for _ in range(3):  # every 5 s, each topic's consumer fails to start again
        clock.now += 5.0
        for topic in ("hooks", "hooks.retry.1", "hooks.retry.2"):
            APP.warning("consumer of %s stopped (%s); restarting", topic, "KafkaConnectionError")
        limiter.tick()
    assert limiter.in_outage
    assert [m for _, _, m in out.lines] == [
        "Kafka unreachable (consumer of hooks stopped (KafkaConnectionError); restarting); the "
        "worker keeps retrying and shows only the first line of each client error until Kafka "
        "answers again",
        "consumer of hooks stopped (KafkaConnectionError); restarting",
    ]
    APP.warning("consumer of %s stopped (%s); restarting", "hooks", "UnknownTopicOrPartition")
    assert out.lines[-1][2] == "consumer of hooks stopped (UnknownTopicOrPartition); restarting"


def test_an_outage_is_one_warning_and_its_end_one_info(
    setup: tuple[LogLimiter, Capture], clock: FakeClock
) -> None:
    limiter, out = setup
    for _ in range(2000):  # ~100 s of aiokafka retrying every 0.05 s, 4 causes
        clock.now += 0.05
        refused()
        CLIENT.error("Unable to update metadata from %s", [1])
        logging.getLogger("aiokafka.consumer.group_coordinator").error(
            "Group Coordinator Request failed: %s", ConnectionError("NodeNotReadyError")
        )
        logging.getLogger("aiokafka.consumer.fetcher").error(
            "Failed fetch messages from %s: %s", 1, ConnectionError("NodeNotReadyError")
        )
        limiter.tick()
    assert limiter.in_outage
    clock.now += 4.0
    limiter.tick()
    assert limiter.in_outage, "4 s of silence is not yet a recovery"
    clock.now += 1.0
    limiter.tick()
    assert not limiter.in_outage
    ours = [(level, m) for name, level, m in out.lines if name == "test.log_limits.report"]
    client = [m for name, _, m in out.lines if name != "test.log_limits.report"]
    assert ours[0][0] == "WARNING"
    assert ours[0][1].startswith("Kafka unreachable (Unable connect to node with id 1:")
    # a reminder per 30 s interval of a 100 s outage, then the recovery, once
    assert [m.split(" (")[0] for _, m in ours[1:-1]] == [
        "Kafka still unreachable after 30s",
        "Kafka still unreachable after 60s",
        "Kafka still unreachable after 90s",
    ]
    assert ours[-1] == (
        "INFO",
        "Kafka reachable again after 100s: 8000 connection errors, 7996 repeated client log "
        "lines not shown (the first of each is above)",
    )
    assert client == [  # the first line of each of the 4 causes, nothing else
        "Unable connect to node with id 1: [Errno 111] Connect call failed ('127.0.0.1', 9092)",
        "Unable to update metadata from [1]",
        "Group Coordinator Request failed: NodeNotReadyError",
        "Failed fetch messages from 1: NodeNotReadyError",
    ]
    assert len(out.lines) == 9


def test_the_next_outage_shows_its_causes_again(
    setup: tuple[LogLimiter, Capture], clock: FakeClock
) -> None:
    limiter, out = setup
    refused()
    clock.now += 6.0
    limiter.tick()
    refused()
    assert [(level, m.split(" (")[0]) for _, level, m in out.lines] == [
        ("WARNING", "Kafka unreachable"),
        ("ERROR", "Unable connect to node with id 1: [Errno 111] Connect call failed"),
        (
            "INFO",
            "Kafka reachable again after 0s: 1 connection errors, 0 repeated client log lines "
            "not shown",
        ),
        ("WARNING", "Kafka unreachable"),
        ("ERROR", "Unable connect to node with id 1: [Errno 111] Connect call failed"),
    ]


def test_tick_writes_the_count_of_a_cause_that_went_quiet(
    setup: tuple[LogLimiter, Capture], clock: FakeClock
) -> None:
    limiter, out = setup
    for _ in range(4):
        APP.warning("disk almost full")
    clock.now += 29.0
    limiter.tick()
    assert len(out.lines) == 1
    clock.now += 1.0
    limiter.tick()
    assert out.lines[-1] == (
        "test.log_limits.report",
        "WARNING",
        "disk almost full (3 similar in the last 30s)",
    )
    clock.now += 60.0
    limiter.tick()
    assert len(out.lines) == 2, "nothing suppressed since: nothing to write"


def test_memory_is_bounded_and_an_evicted_count_is_written(clock: FakeClock) -> None:
    report = logging.getLogger("test.log_limits.evict")
    out = Capture()
    report.addHandler(out)
    report.propagate = False
    try:
        limiter = LogLimiter(interval_s=30.0, max_causes=3, clock=clock, report=report)

        def record(text: str) -> logging.LogRecord:
            return logging.LogRecord("app", logging.ERROR, __file__, 1, text, None, None)

        assert limiter.filter(record("a"))
        assert not limiter.filter(record("a"))
        for text in ("b", "c", "d", "e"):
            assert limiter.filter(record(text))
        assert limiter.cause_count == 3
        assert out.lines == [("test.log_limits.evict", "ERROR", "a (1 similar in the last 0s)")]
        assert limiter.filter(record("a")), "an evicted cause is new again"
    finally:
        report.removeHandler(out)
        report.propagate = True


def test_a_record_seen_by_two_handlers_is_decided_once(clock: FakeClock) -> None:
    limiter = LogLimiter(clock=clock)
    record = logging.LogRecord("app", logging.ERROR, __file__, 1, "boom", None, None)
    assert limiter.filter(record)
    assert limiter.filter(record), "the second handler must not count it as a repeat"
    again = logging.LogRecord("app", logging.ERROR, __file__, 1, "boom", None, None)
    assert not limiter.filter(again)


def test_install_puts_one_limiter_on_every_handler_and_ticks_it() -> None:
    logger = logging.getLogger("test.log_limits.install")
    first, second = Capture(), Capture()
    logger.addHandler(first)
    logger.addHandler(second)
    loop = asyncio.new_event_loop()
    try:
        limiter = install_log_limits(logger, interval_s=7.0, loop=loop, tick_s=0.0)
        assert first.filters == [limiter] == second.filters
        assert limiter.interval_s == 7.0
        ticked: list[None] = []
        limiter.tick = lambda: ticked.append(None)  # type: ignore[method-assign]
        loop.run_until_complete(asyncio.sleep(0))
        loop.run_until_complete(asyncio.sleep(0))
        assert ticked, "the limiter is ticked on the worker's loop"
    finally:
        loop.close()
        logger.removeHandler(first)
        logger.removeHandler(second)


def test_settings_must_make_sense() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        LogLimiter(interval_s=0)
