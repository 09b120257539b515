"""Checks run off the event loop under a deadline: a slow one is check.timeout, the loop ticks."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Awaitable, Iterator
from typing import ClassVar, TypeVar

import pytest

from agents.policy import DEFAULT_POLICY, ProfileBook
from agents.validate.checks import default_checks
from agents.validate.checks._base import Subject
from agents.validate.deadline import CHECK_TIMEOUT, CheckRunner
from agents.validate.gateway import Gateway
from agents.validate.triage import triage
from agents.validate.validate_one import validate_off_loop
from schemas.records import (
    AssetKind,
    BlobRef,
    CheckResult,
    Constraints,
    Disposition,
    GenerationRequest,
    RawAsset,
    Verdict,
)

T = TypeVar("T")

#: The longest the loop may go without a tick while a check spins: generous for a loaded CI
#: machine, and far below the spin itself (which the loop would wait out if the check ran on it).
MAX_TICK_GAP_S = 0.5


def request(**constraints: object) -> GenerationRequest:
    return GenerationRequest(
        request_id="r-1",
        idempotency_key="k-1",
        tenant="acme",
        campaign_id="c-1",
        kind=AssetKind.JSON,
        prompt_template="anything",
        constraints=Constraints.model_validate(constraints),
    )


def raw_json(data: bytes, **constraints: object) -> RawAsset:
    digest = hashlib.sha256(data).hexdigest()
    blob = BlobRef(
        uri=f"file:///b/{digest}", sha256=digest, size=len(data), media_type="application/json"
    )
    return RawAsset(
        request=request(**constraints),
        blob=blob,
        provider="offline",
        model_version="offline-1",
        latency_ms=1.0,
    )


class Spin:
    """A check that burns CPU in pure Python (holding the GIL between bytecodes) until stopped."""

    code: ClassVar[str] = "test.spin"
    kinds: ClassVar[frozenset[AssetKind]] = frozenset(AssetKind)

    def __init__(self, stop: threading.Event, seconds: float = 5.0) -> None:
        self.stop = stop
        self.seconds = seconds

    def __call__(self, subject: Subject) -> CheckResult:
        until = time.perf_counter() + self.seconds
        spins = 0
        while not self.stop.is_set() and time.perf_counter() < until:
            spins += 1
        return CheckResult(code=self.code, passed=True, message=f"spun {spins} times")


class Boom:
    code: ClassVar[str] = "test.boom"
    kinds: ClassVar[frozenset[AssetKind]] = frozenset(AssetKind)

    def __call__(self, subject: Subject) -> CheckResult:
        raise ValueError("bad rule")


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    """Releases spinning checks at the end of a test, so no thread outlives it."""
    event = threading.Event()
    yield event
    event.set()


async def with_ticker(work: Awaitable[T]) -> tuple[T, float, int]:
    """``work``'s result, the longest gap between ticks of a 10 ms ticker meanwhile, and ticks."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        outcome = await work
    finally:
        done.set()
        await ticker
    return outcome, max(gaps, default=0.0), len(gaps)


def test_fast_checks_give_their_own_results_in_order() -> None:
    checks = default_checks()
    subject = Subject(request(), b'{"a": 1}', "application/json")
    results = asyncio.run(CheckRunner(5.0).run_suite(subject, checks))
    assert [r.code for r in results] == [c.code for c in checks if AssetKind.JSON in c.kinds]
    assert all(r.passed for r in results)


def test_a_crashing_check_is_a_failed_result_under_its_code() -> None:
    subject = Subject(request(), b"{}", "application/json")
    result = asyncio.run(CheckRunner(5.0).run(Boom(), subject))
    assert result.code == "test.boom"
    assert not result.passed
    assert "ValueError: bad rule" in result.message


def test_a_check_past_its_deadline_is_check_timeout_and_the_loop_keeps_ticking(
    stop: threading.Event,
) -> None:
    runner = CheckRunner(0.3)
    subject = Subject(request(), b"{}", "application/json")
    started = time.perf_counter()
    result, gap, ticks = asyncio.run(with_ticker(runner.run(Spin(stop), subject)))
    elapsed = time.perf_counter() - started
    assert result.code == CHECK_TIMEOUT
    assert not result.passed
    assert not result.repairable
    assert result.measured == "test.spin"
    assert result.message == "test.spin did not finish within 0.3 s"
    assert elapsed < 2.0  # the spin would take 5 s
    assert ticks >= 5
    assert gap < MAX_TICK_GAP_S  # on the loop, the spin would have stopped the ticker for 5 s
    assert runner.stuck == 1  # Python cannot stop the thread: it is counted until it returns
    stop.set()
    deadline = time.perf_counter() + 5.0
    while runner.stuck and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert runner.stuck == 0


class Wait:
    """A check that takes wall time without using CPU, as one does on a starved or paused host."""

    code: ClassVar[str] = "test.wait"
    kinds: ClassVar[frozenset[AssetKind]] = frozenset(AssetKind)

    def __init__(self, stop: threading.Event, seconds: float) -> None:
        self.stop = stop
        self.seconds = seconds

    def __call__(self, subject: Subject) -> CheckResult:
        self.stop.wait(self.seconds)
        return CheckResult(code=self.code, passed=True, message="waited")


def test_the_deadline_counts_cpu_so_a_starved_check_still_gives_its_answer(
    stop: threading.Event,
) -> None:
    # 0.6 s of waiting is twice the CPU deadline but within the 6x wall backstop (1.8 s).
    runner = CheckRunner(0.3)
    subject = Subject(request(), b"{}", "application/json")
    started = time.perf_counter()
    result = asyncio.run(runner.run(Wait(stop, 0.6), subject))
    assert result.code == "test.wait"
    assert result.passed
    assert time.perf_counter() - started >= 0.6
    assert runner.stuck == 0


def test_a_check_that_waits_past_the_wall_backstop_times_out(stop: threading.Event) -> None:
    runner = CheckRunner(0.1, wall_factor=3)
    subject = Subject(request(), b"{}", "application/json")
    started = time.perf_counter()
    result = asyncio.run(runner.run(Wait(stop, 10.0), subject))
    elapsed = time.perf_counter() - started
    assert result.code == CHECK_TIMEOUT
    assert result.measured == "test.wait"
    assert (
        result.message == "test.wait did not finish within 0.3 s (wall clock: it used little CPU)"
    )
    assert 0.3 <= elapsed < 2.0
    stop.set()


def test_a_wall_factor_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="wall_factor"):
        CheckRunner(1.0, wall_factor=0.5)


def test_overdue_checks_are_capped_new_ones_time_out_unstarted(stop: threading.Event) -> None:
    runner = CheckRunner(0.2, max_stuck=1)
    subject = Subject(request(), b"{}", "application/json")
    first = asyncio.run(runner.run(Spin(stop), subject))
    assert first.code == CHECK_TIMEOUT
    started = time.perf_counter()
    second = asyncio.run(runner.run(Spin(stop, 0.0), subject))
    assert time.perf_counter() - started < 0.2  # not even started
    assert second.code == CHECK_TIMEOUT
    assert "not started: 1 checks are overdue" in second.message


@pytest.mark.parametrize(("review", "disposition"), [(False, "REJECTED"), (True, "REVIEW")])
def test_a_timed_out_check_fails_the_asset_and_triage_decides_as_usual(
    stop: threading.Event, review: bool, disposition: str
) -> None:
    runner = CheckRunner(0.2)
    raw = raw_json(b'{"a": 1}')
    checks = (*default_checks(), Spin(stop))
    validated = asyncio.run(validate_off_loop(raw, b'{"a": 1}', checks, runner.run_suite))
    report = validated.report
    assert report.verdict is Verdict.FAIL
    assert [c.code for c in report.checks if not c.passed] == [CHECK_TIMEOUT]
    policy = DEFAULT_POLICY.model_copy(update={"review": review, "max_attempts": 3})
    decision = triage(validated, policy)
    assert decision.disposition is Disposition(disposition)
    assert decision.retry is None  # re-generating would meet the same slow check


def test_the_gateway_decides_a_backtracking_schema_promptly_with_the_loop_free() -> None:
    """Issue 12 item 3: ``^(a+)+$`` against 29 "a"s and a "!" blocked the loop 12.7 s."""
    schema = {"properties": {"v": {"type": "string", "pattern": "^(a+)+$"}}}
    data = json.dumps({"v": "a" * 29 + "!"}).encode()
    raw = raw_json(data, json_schema=json.dumps(schema))
    gateway = Gateway(ProfileBook({}), {}, runner=CheckRunner(5.0))
    started = time.perf_counter()
    (validated, decision), gap, _ = asyncio.run(with_ticker(gateway.assess(raw, lambda blob: data)))
    assert time.perf_counter() - started < 2.0
    assert gap < MAX_TICK_GAP_S
    failed = [c for c in validated.report.checks if not c.passed]
    assert [c.code for c in failed] == ["json.schema"]
    assert "does not match '^(a+)+$'" in failed[0].message
    assert decision.disposition is Disposition.REJECTED  # the default policy: failures are final


def test_threads_are_kept_for_the_next_assets_not_started_per_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A thread started per check cost 11% of a busy worker's CPU; the runner keeps its own."""
    runner = CheckRunner(5.0)
    checks = default_checks()
    subject = Subject(request(), b'{"a": 1}', "application/json")
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        real_start(thread)

    async def suites() -> list[list[CheckResult]]:
        first = [await runner.run_suite(subject, checks) for _ in range(20)]
        at_once = await asyncio.gather(*(runner.run_suite(subject, checks) for _ in range(4)))
        return [*first, *at_once]

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    results = asyncio.run(suites())
    monkeypatch.undo()
    assert all(r.passed for suite in results for r in suite)
    assert len(results) == 24
    assert all(len(suite) == len(results[0]) > 1 for suite in results)
    checks_threads = [name for name in started if name.startswith("checks-")]
    assert 1 <= len(checks_threads) <= 4  # 24 suites of several checks each


class Exits:
    code: ClassVar[str] = "test.exits"
    kinds: ClassVar[frozenset[AssetKind]] = frozenset(AssetKind)

    def __call__(self, subject: Subject) -> CheckResult:
        raise SystemExit(3)  # not an Exception: run_check lets it through


def test_a_check_raising_systemexit_is_crashed_and_the_suite_goes_on() -> None:
    """The kept thread must answer for it and carry on, not die with the asset unanswered."""
    runner = CheckRunner(2.0)
    subject = Subject(request(), b"{}", "application/json")
    started = time.perf_counter()
    first, second = asyncio.run(runner.run_suite(subject, [Exits(), Boom()]))
    assert time.perf_counter() - started < 1.0  # answered, not timed out
    assert (first.code, first.passed, first.message) == ("test.exits", False, "check crashed")
    assert second.code == "test.boom"
    assert runner.stuck == 0
    again = asyncio.run(runner.run(Boom(), subject))  # the runner still works afterwards
    assert again.code == "test.boom"
