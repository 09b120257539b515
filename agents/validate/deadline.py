"""Checks run off the event loop, each under a deadline.

A check is CPU work (decoding an image, matching a schema, parsing code). On the event loop a
slow one stops everything else the worker does, Kafka heartbeats included, so the group
rebalances and the next worker to take the partition freezes on the same asset. Here each check
runs on a worker thread while the loop awaits it; a check that misses its deadline becomes a
failed, non-repairable ``check.timeout`` result (triage then sends the asset to review or rejects
it, like any request problem) and validation goes on with the next check.

The deadline counts the CPU time the check's thread used, not the time that passed: a worker
that is starved (CPU quota throttling, a paused VM, hundreds of coroutines holding the GIL)
must not turn a good asset into a rejected one, and a pathological input is exactly a check
that burns CPU. A check that waits without burning CPU is still stopped by a wall-clock
backstop, :data:`WALL_FACTOR` times the deadline. Where a thread's CPU clock cannot be read
(not Linux), the deadline is wall time.

Python cannot kill a thread: a timed-out check keeps its thread until it returns. Such threads
are daemons (they never hold up the worker's exit) and are counted; while ``max_stuck`` of them
are still running, further checks are not started at all but time out at once, so a flood of
pathological inputs cannot pile up threads. A thread yields the GIL to the loop only between
bytecodes, so a check stuck inside one C call (Python's ``re``, ``json.loads``) still stalls the
loop: that is why schema regexes run on RE2 and asset sizes are capped before parsing, and why the
deadline is a backstop rather than the defence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

from agents.validate.checks._base import Check, Subject
from agents.validate.suite import run_check
from schemas.records import CheckResult

logger = logging.getLogger(__name__)

#: The code of the result that stands in for a check that did not finish in time.
CHECK_TIMEOUT: Final = "check.timeout"
DEFAULT_CHECK_TIMEOUT_S: Final = 10.0
DEFAULT_MAX_STUCK: Final = 4
#: A check is given up after this many times its CPU deadline in wall time, CPU used or not.
WALL_FACTOR: Final = 6.0


def timed_out(check: Check, seconds: float, why: str = "") -> CheckResult:
    """The failed result of a check that gave no answer in time; ``measured`` names the check.

    Not repairable: re-generating costs money and meets the same request, which is the usual
    cause (a schema or size that makes the check slow); a person or a new request decides.
    """
    return CheckResult(
        code=CHECK_TIMEOUT,
        passed=False,
        message=f"{check.code} did not finish within {seconds:g} s{why}",
        measured=check.code,
        repairable=False,
    )


class _SuiteJob:
    """An asset's checks on one thread, in order.

    ``results`` grows as checks finish and ``started`` is when the running one (index
    ``len(results)``) began, so the loop can tell an overdue check from a long suite; the
    runner's lock orders each finish against the loop abandoning the job.
    """

    __slots__ = (
        "abandoned",
        "answer",
        "checks",
        "clock",
        "cpu_started",
        "finished",
        "loop",
        "results",
        "started",
        "subject",
    )

    def __init__(
        self,
        checks: Sequence[Check],
        subject: Subject,
        loop: asyncio.AbstractEventLoop,
        answer: asyncio.Future[None],
    ) -> None:
        self.checks = checks
        self.subject = subject
        self.loop = loop
        self.answer = answer
        self.results: list[CheckResult] = []
        self.started: float | None = None
        #: The running thread's CPU clock (None: not readable here) and its reading at start.
        self.clock: int | None = None
        self.cpu_started = 0.0
        self.abandoned = False
        self.finished = False


class _Threads:
    """Daemon threads kept for the next asset's checks.

    A thread started per check cost 11% of a busy worker's CPU (py-spy, bench.providers).
    They stay daemons: an abandoned check must not hold up the worker's exit, which rules
    out ``concurrent.futures`` (it joins its threads at exit). A thread whose check is overdue
    stays with it; a new thread starts when none is idle, so overdue checks (capped by
    ``max_stuck``) never hold up the others. The count is bounded by the checks that run at
    once (the validate stage's concurrency) plus the overdue ones.
    """

    def __init__(self, work: Callable[[_SuiteJob], None]) -> None:
        self._work = work
        self._jobs: queue.SimpleQueue[_SuiteJob] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._count = 0

    def submit(self, job: _SuiteJob) -> None:
        with self._lock:
            start = self._idle == 0
            if start:
                self._count += 1
            else:
                self._idle -= 1
            name = f"checks-{self._count}"
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            self._work(self._jobs.get())
            with self._lock:
                self._idle += 1


class CheckRunner:
    """Runs each asset's checks in order on a worker thread, each under ``timeout_s`` of CPU
    time (and ``wall_factor`` times that of wall time)."""

    def __init__(
        self,
        timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
        *,
        max_stuck: int = DEFAULT_MAX_STUCK,
        wall_factor: float = WALL_FACTOR,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if max_stuck < 1:
            raise ValueError(f"max_stuck must be at least 1, got {max_stuck}")
        if wall_factor < 1:
            raise ValueError(f"wall_factor must be at least 1, got {wall_factor}")
        self.timeout_s = timeout_s
        self.wall_timeout_s = timeout_s * wall_factor
        self.max_stuck = max_stuck
        self._lock = threading.Lock()
        self._stuck = 0
        self._threads = _Threads(self._work)

    @property
    def stuck(self) -> int:
        """Threads still running a check whose deadline has passed."""
        with self._lock:
            return self._stuck

    async def run_suite(self, subject: Subject, checks: Sequence[Check]) -> list[CheckResult]:
        """Like :func:`agents.validate.suite.run_suite`, off the loop and under deadlines.

        In order and one at a time, as on the loop: checks of one asset share a prober whose
        cached decode the later ones reuse.
        """
        kind = subject.request.kind
        return await self._run_checks(subject, [check for check in checks if kind in check.kinds])

    async def run(self, check: Check, subject: Subject) -> CheckResult:
        """One check's result, or ``check.timeout`` once it used ``timeout_s`` of CPU."""
        (result,) = await self._run_checks(subject, [check])
        return result

    async def _run_checks(self, subject: Subject, checks: Sequence[Check]) -> list[CheckResult]:
        """The checks run on one thread, which wakes the loop once, at the end; a check past its
        deadline is answered ``check.timeout`` and the ones after it go on on another thread."""
        results: list[CheckResult] = []
        remaining = list(checks)
        loop = asyncio.get_running_loop()
        while remaining:
            if self.stuck >= self.max_stuck:
                why = f" (not started: {self.max_stuck} checks are overdue)"
                results.extend(timed_out(check, self.timeout_s, why) for check in remaining)
                break
            job = _SuiteJob(remaining, subject, loop, loop.create_future())
            self._threads.submit(job)
            overdue = await self._wait(job)
            results.extend(job.results)
            if overdue is None:
                break
            index, result = overdue
            results.append(result)
            remaining = remaining[index + 1 :]
        return results

    async def _wait(self, job: _SuiteJob) -> tuple[int, CheckResult] | None:
        """None once ``job`` finished, else the index of its check that passed its deadline and
        the ``check.timeout`` result standing in for it.

        The job is then abandoned: its thread counts as stuck until that check returns, and
        what it would answer is dropped. The loop wakes when the running check could have used
        its CPU time at the earliest, reads what it did use, and waits again if not yet.
        """
        while True:
            with self._lock:
                if job.finished:
                    return None
                left, why = self._left(job)
                if left <= 0:
                    job.abandoned = True
                    self._stuck += 1
                    stuck = self._stuck
                    index = len(job.results)
                    break
            await asyncio.wait((job.answer,), timeout=left)
        seconds, note = self._limit(why)
        logger.warning(
            "check %s of request %s passed its %s of %g s (%d checks overdue)",
            job.checks[index].code,
            job.subject.request.request_id,
            why,
            seconds,
            stuck,
        )
        return index, timed_out(job.checks[index], seconds, note)

    def _left(self, job: _SuiteJob) -> tuple[float, str]:
        """Seconds the running check has left, and which deadline is nearer (lock held)."""
        if job.started is None:  # not picked up by a thread yet: queueing does not count
            return self.timeout_s, _CPU
        wall = time.monotonic() - job.started
        used = wall
        if job.clock is not None:
            try:
                used = time.clock_gettime(job.clock) - job.cpu_started
            except OSError:  # the clock went away: wall time stands in
                used = wall
        cpu_left, wall_left = self.timeout_s - used, self.wall_timeout_s - wall
        return (cpu_left, _CPU) if cpu_left <= wall_left else (wall_left, _WALL)

    def _limit(self, why: str) -> tuple[float, str]:
        if why == _WALL:
            return self.wall_timeout_s, " (wall clock: it used little CPU)"
        return self.timeout_s, ""

    def _work(self, job: _SuiteJob) -> None:
        clock = _thread_clock()
        with self._lock:
            job.clock = clock
            job.cpu_started = _read(clock)
            job.started = time.monotonic()
        for check in job.checks:
            try:
                outcome = run_check(check, job.subject)
            except BaseException:  # run_check catches Exception: this is e.g. a SystemExit
                outcome = CheckResult(code=check.code, passed=False, message="check crashed")
            with self._lock:
                if job.abandoned:  # this check was overdue: the loop answered for it
                    self._stuck -= 1
                    return
                job.results.append(outcome)
                job.cpu_started = _read(clock)
                job.started = time.monotonic()
        with self._lock:
            if job.abandoned:  # overdue at the very end: the loop already answered
                return
            job.finished = True
        # A closed loop (RuntimeError) means nobody waits for the answer any more.
        with contextlib.suppress(RuntimeError):
            job.loop.call_soon_threadsafe(_settle, job.answer)


_CPU: Final = "CPU deadline"
_WALL: Final = "wall-clock backstop"


def _thread_clock() -> int | None:
    """This thread's CPU-time clock, readable from the loop's thread; None where there is none."""
    try:
        return time.pthread_getcpuclockid(threading.get_ident())
    except (AttributeError, OSError):
        return None


def _read(clock: int | None) -> float:
    if clock is None:
        return 0.0
    try:
        return time.clock_gettime(clock)
    except OSError:
        return 0.0


def _settle(answer: asyncio.Future[None]) -> None:
    if not answer.done():
        answer.set_result(None)
