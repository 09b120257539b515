"""Requests gathered into batches, one collector per batch rung, each request given its result.

A request waits in :meth:`BatchCollector.run` for one outcome: its :class:`Generated`, or a
:class:`ProviderError` that sends it to the synchronous chain. Batches are submitted when
``max_size`` requests wait or ``max_age_s`` after the first of them, then polled every
``poll_s`` until they end. A request gives up at its ``give_up_at`` (wall clock) with
``batch.late`` even while its batch still runs; when every request of a batch has given up,
the batch is cancelled (best effort: what already ran is billed by the provider and not seen
here). Answers that do arrive after their caller gave up are not booked into any budget (their
request's spend was settled without them) but counted: ``BatchStats.late_cost`` and
``assetline_batch_late_cost_usd_total``.

Outcome codes besides the provider's own: ``batch.late``, ``batch.failed`` (the batch ended
without running: validation), ``batch.missing`` / ``batch.expired`` / ``batch.cancelled``
(the batch ended without this request's result), and the submit's or poll's
``provider.*`` code when the batch API itself failed for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry

from agents.inference.batch._clients import BatchClient, BatchItem, BatchStatus
from agents.inference.batch._metrics import BatchMetrics
from agents.inference.providers.base import Generated, ProviderCall, ProviderError
from agents.inference.routing.config import BatchRung

__all__ = ["BatchCollector", "BatchStats"]

log = logging.getLogger(__name__)

#: Polls or downloads failing in a row (retryable errors) before a batch is given up on.
MAX_POLL_FAILURES: Final = 20

Outcome = Generated | ProviderError


@dataclass
class _Waiter:
    item: BatchItem
    give_up_at: float
    future: asyncio.Future[Outcome]

    def settle(self, outcome: Outcome) -> None:
        if not self.future.done():
            self.future.set_result(outcome)


@dataclass
class BatchStats:
    """What a collector did, for tests and metrics."""

    batches: int = 0
    sizes: list[int] = field(default_factory=list)
    served: int = 0
    late: int = 0
    failed: int = 0
    cancelled_batches: int = 0
    #: USD the provider bills for answers that came after their caller gave up (not booked).
    late_cost: float = 0.0


class BatchCollector:
    """Accumulates one rung's calls into batches and hands each caller its result."""

    def __init__(
        self,
        rung: BatchRung,
        client: BatchClient,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: BatchMetrics | None = None,
    ) -> None:
        self.rung = rung
        self.client = client
        self.stats = BatchStats()
        metrics = metrics or BatchMetrics.build(CollectorRegistry())
        labels = (rung.provider, rung.model)
        self._submitted = metrics.batches.labels(*labels)
        self._waiting = metrics.waiting.labels(*labels)
        self._waited = metrics.wait_seconds.labels(*labels)
        self._calls = metrics.calls
        self._late_cost = metrics.late_cost.labels(*labels)
        self._clock = clock
        self._sleep = sleep
        self._pending: list[_Waiter] = []
        self._first_at = 0.0
        self._timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Batches submitted and not yet ended: cancelled at the provider by :meth:`aclose`.
        self._live: set[str] = set()
        self._closed = False
        self._prefix = uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)

    async def run(self, call: ProviderCall, give_up_at: float) -> Outcome:
        """The call's batched outcome, or ``batch.late`` at ``give_up_at`` (wall clock).

        Cancelled (:class:`asyncio.CancelledError`) once the collector is closing."""
        if self._closed:  # the worker is stopping: the event is fetched again by its next owner
            raise asyncio.CancelledError
        loop = asyncio.get_running_loop()
        waiter = _Waiter(
            BatchItem(f"{self._prefix}-{next(self._ids)}", call), give_up_at, loop.create_future()
        )
        if not self._pending:
            self._first_at = self._clock()
        self._pending.append(waiter)
        if len(self._pending) >= self.rung.max_size:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._age_flush())
        joined = self._clock()
        self._waiting.inc()
        try:
            outcome = await waiter.future
        finally:
            self._waiting.dec()
            if waiter in self._pending:  # cancelled before its batch left
                self._pending.remove(waiter)
            waiter.settle(_error("batch.abandoned", "the caller stopped waiting"))
        self._waited.observe(max(0.0, self._clock() - joined))
        code = "ok" if isinstance(outcome, Generated) else outcome.code
        self._calls.labels(self.rung.provider, self.rung.model, code).inc()
        return outcome

    async def aclose(self) -> None:
        """Stop timers and polls, and cancel the batches still running at the provider: no
        one could read their results any more (a restarted worker batches its requests
        anew). Waiting callers are cancelled, not answered: a worker that stops must not
        send them through the chain (its adapters are closing) nor finish their events, which
        the next owner of their partitions fetches again."""
        self._closed = True
        tasks = [*self._tasks, *([self._timer] if self._timer is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        _stop(self._pending)
        self._pending.clear()
        for batch_id in list(self._live):
            await self._cancel(batch_id)

    # --- submitting --------------------------------------------------------------------------

    async def _age_flush(self) -> None:
        try:
            while self._pending:
                wait = self._first_at + self.rung.max_age_s - self._clock()
                if wait <= 0:
                    self._flush()
                    break
                await self._sleep(wait)
        finally:
            if self._timer is asyncio.current_task():
                self._timer = None

    def _flush(self) -> None:
        waiters, self._pending = (
            self._pending[: self.rung.max_size],
            self._pending[self.rung.max_size :],
        )
        if self._pending:
            self._first_at = self._clock()
        elif self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
            self._timer = None
        waiters = [w for w in waiters if not w.future.done()]
        if not waiters:
            return
        task = asyncio.create_task(self._run_batch(waiters))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, waiters: list[_Waiter]) -> None:
        self.stats.batches += 1
        self.stats.sizes.append(len(waiters))
        self._submitted.inc()
        try:
            batch_id = await self.client.submit([w.item for w in waiters])
        except ProviderError as exc:
            log.warning("batch of %d not submitted: %s", len(waiters), exc.message)
            self._settle_all(waiters, exc)
            return
        except asyncio.CancelledError:
            _stop(waiters)
            raise
        except Exception as exc:  # a client bug must not strand the callers
            log.exception("batch submit crashed")
            self._settle_all(waiters, _error("batch.crashed", type(exc).__name__))
            return
        self._live.add(batch_id)
        try:
            await self._follow(batch_id, waiters)
        except asyncio.CancelledError:
            _stop(waiters)
            raise
        except Exception as exc:
            log.exception("following batch %s crashed", batch_id)
            self._settle_all(waiters, _error("batch.crashed", type(exc).__name__))

    # --- following ---------------------------------------------------------------------------

    async def _follow(self, batch_id: str, waiters: list[_Waiter]) -> None:
        failures = 0
        next_poll = self._clock() + self.rung.poll_s
        while True:
            self._give_up_late(waiters)
            open_waiters = [w for w in waiters if not w.future.done()]
            if not open_waiters:
                await self._cancel(batch_id)
                return
            now = self._clock()
            earliest = min(w.give_up_at for w in open_waiters)
            if now < next_poll:
                await self._sleep(max(0.0, min(next_poll, earliest) - now))
                continue
            next_poll = now + self.rung.poll_s
            try:
                status = await self.client.status(batch_id)
                if status.state == "running":
                    failures = 0
                    continue
                self._live.discard(batch_id)
                if status.state == "failed":
                    reason = status.detail or f"batch {status.status}"
                    self._settle_all(waiters, _error("batch.failed", reason))
                    return
                await self._deliver(status, waiters)
                return
            except ProviderError as exc:
                failures += 1
                if not exc.retryable or failures >= MAX_POLL_FAILURES:
                    log.warning("giving up on batch %s: %s", batch_id, exc.message)
                    self._settle_all(waiters, exc)
                    return

    async def _deliver(self, status: BatchStatus, waiters: list[_Waiter]) -> None:
        # the calls given up on are read too: the provider bills their answers all the same
        calls = {w.item.custom_id: w.item.call for w in waiters}
        results = await self.client.results(status, calls)
        absent = "batch.missing" if status.status in ("completed", "ended") else None
        absent = absent or f"batch.{status.status}"
        late_cost = sum(
            self.rung.price.cost(outcome.usage)
            for waiter in waiters
            if waiter.future.done() and (outcome := results.get(waiter.item.custom_id))
        )
        if late_cost > 0:
            self.stats.late_cost += late_cost
            self._late_cost.inc(late_cost)
            log.warning(
                "batch %s answered calls already sent to the chain: $%.6f billed, not booked",
                status.batch_id,
                late_cost,
            )
        for waiter in waiters:
            if waiter.future.done():
                continue
            outcome = results.get(waiter.item.custom_id)
            if outcome is None:
                outcome = _error(absent, f"batch {status.batch_id} ended without this request")
            if isinstance(outcome, Generated):
                self.stats.served += 1
            else:
                self.stats.failed += 1
            waiter.settle(outcome)

    def _give_up_late(self, waiters: list[_Waiter]) -> None:
        now = self._clock()
        for waiter in waiters:
            if not waiter.future.done() and now >= waiter.give_up_at:
                self.stats.late += 1
                waiter.settle(
                    _error("batch.late", "no batch result while time was left for the sync chain")
                )

    async def _cancel(self, batch_id: str) -> None:
        self.stats.cancelled_batches += 1
        try:
            await self.client.cancel(batch_id)
        except ProviderError as exc:
            log.info("could not cancel batch %s: %s", batch_id, exc.message)
        self._live.discard(batch_id)  # not when interrupted: aclose tries again

    def _settle_all(self, waiters: list[_Waiter], error: ProviderError) -> None:
        for waiter in waiters:
            if not waiter.future.done():
                self.stats.failed += 1
                waiter.settle(error)


def _stop(waiters: list[_Waiter]) -> None:
    """Cancel the callers still waiting (the collector is closing)."""
    for waiter in waiters:
        if not waiter.future.done():
            waiter.future.cancel()


def _error(code: str, message: str) -> ProviderError:
    return ProviderError(code, message)
