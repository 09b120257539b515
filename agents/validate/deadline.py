"""Checks run off the event loop, each under a deadline.

A check is CPU work (decoding an image, matching a schema, parsing code). On the event loop a
slow one stops everything else the worker does, Kafka heartbeats included, so the group
rebalances and the next worker to take the partition freezes on the same asset. Here each check
runs on a thread of its own while the loop awaits it; a check that misses its deadline becomes a
failed, non-repairable ``check.timeout`` result (triage then sends the asset to review or rejects
it, like any request problem) and validation goes on with the next check.

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
import threading
from collections.abc import Sequence
from typing import Final

from agents.validate.checks._base import Check, Subject
from agents.validate.suite import run_check
from schemas.records import CheckResult

logger = logging.getLogger(__name__)

#: The code of the result that stands in for a check that did not finish in time.
CHECK_TIMEOUT: Final = "check.timeout"
DEFAULT_CHECK_TIMEOUT_S: Final = 10.0
DEFAULT_MAX_STUCK: Final = 4


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


class _Job:
    """One check on its thread; the runner's lock orders its finish against its abandonment."""

    __slots__ = ("abandoned", "finished")

    def __init__(self) -> None:
        self.abandoned = False
        self.finished = False


class CheckRunner:
    """Runs checks on worker threads, one at a time per asset, each under ``timeout_s``."""

    def __init__(
        self, timeout_s: float = DEFAULT_CHECK_TIMEOUT_S, *, max_stuck: int = DEFAULT_MAX_STUCK
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if max_stuck < 1:
            raise ValueError(f"max_stuck must be at least 1, got {max_stuck}")
        self.timeout_s = timeout_s
        self.max_stuck = max_stuck
        self._lock = threading.Lock()
        self._stuck = 0

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
        return [await self.run(check, subject) for check in checks if kind in check.kinds]

    async def run(self, check: Check, subject: Subject) -> CheckResult:
        """One check's result, or ``check.timeout`` once ``timeout_s`` has passed."""
        if self.stuck >= self.max_stuck:
            return timed_out(
                check, self.timeout_s, f" (not started: {self.max_stuck} checks are overdue)"
            )
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[CheckResult] = loop.create_future()
        job = _Job()
        thread = threading.Thread(
            target=self._work,
            args=(job, check, subject, loop, answer),
            name=f"check {check.code}",
            daemon=True,
        )
        thread.start()
        try:
            return await asyncio.wait_for(answer, self.timeout_s)
        except TimeoutError:
            with self._lock:
                if not job.finished:
                    job.abandoned = True
                    self._stuck += 1
                stuck = self._stuck
            logger.warning(
                "check %s of request %s passed its %g s deadline (%d checks overdue)",
                check.code,
                subject.request.request_id,
                self.timeout_s,
                stuck,
            )
            return timed_out(check, self.timeout_s)

    def _work(
        self,
        job: _Job,
        check: Check,
        subject: Subject,
        loop: asyncio.AbstractEventLoop,
        answer: asyncio.Future[CheckResult],
    ) -> None:
        outcome: CheckResult | None = None
        try:
            outcome = run_check(check, subject)
        finally:
            with self._lock:
                job.finished = True
                if job.abandoned:
                    self._stuck -= 1
            if outcome is None:  # run_check catches Exception; this is e.g. a SystemExit
                outcome = CheckResult(code=check.code, passed=False, message="check crashed")
            # A closed loop (RuntimeError) means nobody waits for the answer any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, answer, outcome)


def _settle(answer: asyncio.Future[CheckResult], outcome: CheckResult) -> None:
    if not answer.done():  # a timed-out wait has cancelled it
        answer.set_result(outcome)
