"""Requests gathered into batches, one collector per batch rung, each request given its result.

A request waits in :meth:`BatchCollector.run` for one outcome: its :class:`Generated`, or a
:class:`ProviderError` that sends it to the synchronous chain. Batches are submitted when
``max_size`` requests wait or ``max_age_s`` after the first of them, then polled every
``poll_s`` until they end. A request gives up at its ``give_up_at`` (wall clock) with
``batch.late`` even while its batch still runs; when every request of a batch has given up,
the batch is cancelled (best effort) and still followed to its end, so what ran before the
cancel and was billed is read too. Answers that arrive after their caller gave up are handed
to the caller's ``on_late`` (run in the caller's context: the router books their cost into the
request's budgets; the completion the chain produced is never touched) and counted:
``BatchStats.late_cost`` and ``assetline_batch_late_cost_usd_total``.

Crash safety (:mod:`agents.inference.batch._tickets`): ``run``'s ``on_submitted`` is awaited
in the caller's task once its batch exists (the router records the request's place in it
durably), and :meth:`BatchCollector.resume` lets a request's next owner follow that batch
instead of submitting the call again. With a client that uploads the calls before creating
the batch (:class:`UploadFirst`), each caller's ``on_intent`` (the file id) is awaited, in its
context, between the upload and the create, and the create waits for those records (at most
``intent_wait_s``); :meth:`BatchCollector.created_from` lets the next owner of a request that
has only its intent recorded find out whether the batch was made. With durable tickets
(``durable``), a batch whose callers stopped waiting because the worker stops or lost their
partitions is neither cancelled nor counted as given up: their next owner resumes it.

Every HTTP exchange with the batch API goes through ``gate`` (the router's: the provider's
in-flight limit and circuit breaker, so batch API failures open the breaker and 429s shrink
the limit), bounded in time per operation; a poll answered 429 waits its ``Retry-After``.

Outcome codes besides the provider's own: ``batch.late``, ``batch.failed`` (the batch ended
without running: validation), ``batch.missing`` / ``batch.expired`` / ``batch.cancelled``
(the batch ended without this request's result), and the submit's or poll's
``provider.*`` code when the batch API itself failed for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeVar

from prometheus_client import CollectorRegistry

from agents.inference.batch._clients import (
    LOOKUP_PAGES,
    BatchClient,
    BatchItem,
    BatchStatus,
    UploadFirst,
    upload_first,
)
from agents.inference.batch._metrics import BatchMetrics
from agents.inference.providers.base import Generated, ProviderCall, ProviderError
from agents.inference.routing.config import BatchRung

__all__ = ["BatchCollector", "BatchGate", "BatchStats", "bounded"]

log = logging.getLogger(__name__)

#: Polls or downloads failing in a row (retryable errors) before a batch is given up on.
MAX_POLL_FAILURES: Final = 20
#: The router's code for a rung skipped by its open breaker (a wait, not a poll failure).
BREAKER_OPEN: Final = "breaker.open"
#: Submissions refused before anything was created: safe to send again.
REFUSED_FOR_SURE: Final = frozenset({"provider.rate_limited", BREAKER_OPEN})
#: How long a create waits for its callers' intents to be acknowledged (the broker answers
#: in milliseconds; one that does not answer must not hold the batch for long).
INTENT_WAIT_S: Final = 10.0
#: Batches found by their input files, remembered for the requests of the same batch.
FOUND_KEPT: Final = 1024

Outcome = Generated | ProviderError
T = TypeVar("T")
#: ``on_intent(input_file_id, custom_id)``: True once the intent is durable.
OnIntent = Callable[[str, str], Coroutine[Any, Any, bool]]
WaiterState = Literal["waiting", "late", "abandoned", "settled"]


class BatchGate(Protocol):
    """Runs one batch API operation (``op``, one or a few HTTP exchanges) for ``provider``,
    within ``timeout_s``; raises :class:`ProviderError` (``breaker.open`` when the provider's
    breaker refuses it)."""

    async def __call__(
        self, provider: str, op: Callable[[], Awaitable[T]], timeout_s: float
    ) -> T: ...


async def bounded(provider: str, op: Callable[[], Awaitable[T]], timeout_s: float) -> T:
    """``op`` within ``timeout_s`` as a whole (``provider.timeout``, retryable, when not)."""
    timeout = asyncio.timeout(timeout_s)
    try:
        async with timeout:
            return await op()
    except TimeoutError:
        if not timeout.expired():
            raise
        raise ProviderError(
            "provider.timeout",
            f"{provider}: batch API operation took more than {timeout_s:g}s",
            retryable=True,
        ) from None


@dataclass
class _Waiter:
    item: BatchItem
    give_up_at: float
    future: asyncio.Future[Outcome]
    #: The batch id once the batch exists (cancelled when the batch was never created).
    submitted: asyncio.Future[str]
    on_late: Callable[[Outcome], None] | None = None
    context: contextvars.Context | None = None
    state: WaiterState = "waiting"
    on_intent: OnIntent | None = None

    @property
    def abandoned(self) -> bool:
        """The caller stopped waiting (its task was cancelled: its future is, at once, while
        its own cleanup that sets ``state`` runs later)."""
        return self.state == "abandoned" or (self.state == "waiting" and self.future.cancelled())

    def settle(self, outcome: Outcome, state: WaiterState = "settled") -> None:
        if not self.future.done():
            self.state = state
            self.future.set_result(outcome)
        if not self.submitted.done():
            self.submitted.cancel()

    def late_answer(self, outcome: Outcome) -> None:
        """Hand an answer that came after the give-up to the caller's ``on_late``."""
        if self.on_late is None:
            return
        try:
            if self.context is not None:
                self.context.run(self.on_late, outcome)
            else:
                self.on_late(outcome)
        except Exception:  # booking must not stop the batch's other callers
            log.exception("booking a late batch answer failed")


@dataclass
class BatchStats:
    """What a collector did, for tests and metrics."""

    batches: int = 0
    sizes: list[int] = field(default_factory=list)
    served: int = 0
    late: int = 0
    failed: int = 0
    cancelled_batches: int = 0
    #: Batches followed again by a request's next owner (no new submission).
    resumed_batches: int = 0
    #: USD the batch price says answers cost that came after their caller gave up (handed to
    #: ``on_late``, which books them).
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
        gate: BatchGate = bounded,
    ) -> None:
        self.rung = rung
        self.client = client
        self.stats = BatchStats()
        #: Set by the router: the provider's limit and breaker around every batch API call.
        self.gate: BatchGate = gate
        #: True when requests' places in batches are recorded (their next owner resumes them).
        self.durable = False
        metrics = metrics or BatchMetrics.build(CollectorRegistry())
        labels = (rung.provider, rung.model)
        self._submitted = metrics.batches.labels(*labels)
        self._waiting = metrics.waiting.labels(*labels)
        self._waited = metrics.wait_seconds.labels(*labels)
        self._calls = metrics.calls
        self._late_cost = metrics.late_cost.labels(*labels)
        self._resumed_calls = metrics.resumed.labels(*labels)
        self._clock = clock
        self._sleep = sleep
        self._pending: list[_Waiter] = []
        self._first_at = 0.0
        self._timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Batches submitted and not yet ended: cancelled at the provider by :meth:`aclose`.
        self._live: set[str] = set()
        #: Batches followed for resumed requests: batch id -> their waiters (growing).
        self._resumed: dict[str, list[_Waiter]] = {}
        #: Input file id -> the batch made from it, and the lookups under way.
        self._found: dict[str, str] = {}
        self._finding: dict[str, asyncio.Task[str | None]] = {}
        #: Intents being written (see :meth:`_intend`).
        self._writes: set[asyncio.Task[bool]] = set()
        #: How long a create waits for its callers' intents (:data:`INTENT_WAIT_S`).
        self.intent_wait_s = INTENT_WAIT_S
        self._closed = False
        self._prefix = uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)

    async def run(
        self,
        call: ProviderCall,
        give_up_at: float,
        *,
        on_submitted: Callable[[str, str], Awaitable[object]] | None = None,
        on_late: Callable[[Outcome], None] | None = None,
        on_intent: OnIntent | None = None,
    ) -> Outcome:
        """The call's batched outcome, or ``batch.late`` at ``give_up_at`` (wall clock).

        ``on_submitted(batch_id, custom_id)`` is awaited in this task once the batch exists;
        ``on_intent(input_file_id, custom_id)`` (clients that upload first) after the upload,
        in this task's context, and the create waits for it (:meth:`_intend`);
        ``on_late(outcome)`` gets the answer if it comes after the give-up (in this task's
        context, from the collector's). Cancelled (:class:`asyncio.CancelledError`) once the
        collector is closing."""
        if self._closed:  # the worker is stopping: the event is fetched again by its next owner
            raise asyncio.CancelledError
        waiter = self._waiter(
            f"{self._prefix}-{next(self._ids)}", call, give_up_at, on_late, on_intent
        )
        if not self._pending:
            self._first_at = self._clock()
        self._pending.append(waiter)
        if len(self._pending) >= self.rung.max_size:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._age_flush())
        return await self._wait(waiter, on_submitted)

    async def resume(
        self,
        call: ProviderCall,
        batch_id: str,
        custom_id: str,
        give_up_at: float,
        *,
        on_late: Callable[[Outcome], None] | None = None,
    ) -> Outcome:
        """The outcome of ``call``, already in batch ``batch_id`` as ``custom_id`` (submitted
        by a previous owner of the request): the batch is followed, not submitted again."""
        if self._closed:
            raise asyncio.CancelledError
        waiter = self._waiter(custom_id, call, give_up_at, on_late)
        waiter.submitted.set_result(batch_id)
        self._resumed_calls.inc()
        group = self._resumed.get(batch_id)
        if group is None:
            group = self._resumed[batch_id] = []
            self.stats.resumed_batches += 1
            self._track(asyncio.create_task(self._follow_resumed(batch_id, group)))
        group.append(waiter)
        return await self._wait(waiter, None)

    async def created_from(self, input_file_id: str, give_up_at: float) -> str | None:
        """The batch a previous owner of a request created from ``input_file_id`` (its intent
        ticket), or None when none was: the create never happened, the call is batched anew.

        A lookup that fails is tried again as a poll is (a 429's or an open breaker's wait
        honoured, at most :data:`MAX_POLL_FAILURES` retryable failures) until ``give_up_at``,
        then its error is raised and the router sends the request to the synchronous chain.
        Never taken as "not found": batching the call anew while its batch may exist pays it
        twice and answers a day late at worst, where the chain answers within the deadline
        (paying twice only if the batch does exist) and adds no batch to a batch API that is
        failing. Concurrent lookups of one file share one; a batch found is remembered.
        """
        if self._closed:
            raise asyncio.CancelledError
        client = upload_first(self.client)
        if client is None:
            raise _error("provider.unsupported", f"{self.rung.provider}: batches have no files")
        failures = 0
        while True:
            try:
                return await self._lookup(client, input_file_id)
            except ProviderError as exc:
                wait = exc.retry_after_s if exc.retry_after_s is not None else self.rung.poll_s
                if exc.code != BREAKER_OPEN:
                    failures += 1
                    if not exc.retryable or failures >= MAX_POLL_FAILURES:
                        raise
                if give_up_at - self._clock() <= wait:
                    raise  # no answer before the give-up: the chain's turn
                await self._sleep(wait)

    async def _lookup(self, client: UploadFirst, input_file_id: str) -> str | None:
        found = self._found.get(input_file_id)
        if found is not None:
            return found
        lookup = self._finding.get(input_file_id)
        if lookup is None:
            op = functools.partial(client.find, input_file_id)
            lookup = asyncio.create_task(self._http(op, LOOKUP_PAGES))
            self._finding[input_file_id] = lookup
            self._track(lookup)
            lookup.add_done_callback(functools.partial(self._looked_up, input_file_id))
        return await asyncio.shield(lookup)

    def _looked_up(self, input_file_id: str, lookup: asyncio.Task[str | None]) -> None:
        if self._finding.get(input_file_id) is lookup:
            del self._finding[input_file_id]
        if lookup.cancelled() or lookup.exception() is not None:  # retrieved: maybe no one waits
            return
        found = lookup.result()
        if found is not None:
            if len(self._found) >= FOUND_KEPT:
                del self._found[next(iter(self._found))]
            self._found[input_file_id] = found

    def _waiter(
        self,
        custom_id: str,
        call: ProviderCall,
        give_up_at: float,
        on_late: Callable[[Outcome], None] | None,
        on_intent: OnIntent | None = None,
    ) -> _Waiter:
        loop = asyncio.get_running_loop()
        keep = on_late is not None or on_intent is not None
        return _Waiter(
            BatchItem(custom_id, call),
            give_up_at,
            loop.create_future(),
            loop.create_future(),
            on_late,
            contextvars.copy_context() if keep else None,
            on_intent=on_intent,
        )

    async def _wait(
        self, waiter: _Waiter, on_submitted: Callable[[str, str], Awaitable[object]] | None
    ) -> Outcome:
        joined = self._clock()
        self._waiting.inc()
        try:
            if on_submitted is not None:
                await asyncio.wait(
                    (waiter.future, waiter.submitted), return_when=asyncio.FIRST_COMPLETED
                )
                if waiter.submitted.done() and not waiter.submitted.cancelled():
                    try:
                        await on_submitted(waiter.submitted.result(), waiter.item.custom_id)
                    except Exception:  # unrecorded: at worst a crash pays this call again
                        log.exception("recording a batched call's place failed")
            outcome = await waiter.future
        finally:
            self._waiting.dec()
            if waiter in self._pending:  # cancelled before its batch left
                self._pending.remove(waiter)
            waiter.settle(_error("batch.abandoned", "the caller stopped waiting"), "abandoned")
            if waiter.state == "waiting":  # its future was cancelled with the caller
                waiter.state = "abandoned"
        self._waited.observe(max(0.0, self._clock() - joined))
        code = "ok" if isinstance(outcome, Generated) else outcome.code
        self._calls.labels(self.rung.provider, self.rung.model, code).inc()
        return outcome

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Stop timers and polls. Without durable tickets, cancel the batches still running at
        the provider: no one could read their results any more (a restarted worker batches
        its requests anew); with them, leave them running for the requests' next owners.
        Waiting callers are cancelled, not answered: a worker that stops must not send them
        through the chain (its adapters are closing) nor finish their events, which the next
        owner of their partitions fetches again."""
        self._closed = True
        self._found.clear()
        tasks = [*self._tasks, *([self._timer] if self._timer is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        _stop(self._pending)
        self._pending.clear()
        if self.durable:
            self._live.clear()
            return
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
        self._track(asyncio.create_task(self._run_batch(waiters)))

    async def _run_batch(self, waiters: list[_Waiter]) -> None:
        self.stats.batches += 1
        self.stats.sizes.append(len(waiters))
        self._submitted.inc()
        try:
            submitted = await self._submit(waiters)
            if submitted is None:
                return
            batch_id, waiters = submitted
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
        for waiter in waiters:
            if not waiter.submitted.done():
                waiter.submitted.set_result(batch_id)
        await self._follow_guarded(batch_id, waiters, resumed=False)

    async def _submit(self, waiters: list[_Waiter]) -> tuple[str, list[_Waiter]] | None:
        """Create the batch of the callers still waiting; its id and them, or None when all
        gave up first. Refused for sure (429, the open breaker: nothing was created), it is
        tried again after the wait asked for, for the callers whose give-up time allows: a
        busy batch API must not send a batch's worth of calls to the synchronous price. Any
        other failure raises (a 5xx or a timeout may have created a batch: never repeated; the
        OpenAI client finds such a batch by its input file and returns it).

        A client that uploads first gets the file, the callers' intents (:meth:`_intend`),
        then the create; a create tried again reuses the file while the same callers wait,
        else uploads theirs anew (the intents of those gone name a file no batch is made
        from: their next owners batch them anew)."""
        staged = upload_first(self.client)
        uploaded: tuple[str, list[str]] | None = None  # the file and its calls' custom ids
        for attempt in range(1, MAX_POLL_FAILURES + 1):
            self._give_up_late(waiters)
            waiters = [w for w in waiters if not w.future.done()]
            if not waiters:
                return None
            items = [w.item for w in waiters]
            try:
                if staged is None:
                    # an upload, a create and, when the create's answer is lost, a lookup:
                    # each exchange is bounded by timeout_s
                    submit = functools.partial(self.client.submit, items)
                    return await self._http(submit, 2 + LOOKUP_PAGES), waiters
                ids = [item.custom_id for item in items]
                if uploaded is None or uploaded[1] != ids:
                    uploaded = await self._http(functools.partial(staged.upload, items)), ids
                    await self._intend(uploaded[0], waiters)
                    if all(w.future.done() for w in waiters):
                        return None  # every caller left while its intent was written
                create = functools.partial(staged.create, uploaded[0])
                return await self._http(create, 1 + LOOKUP_PAGES), waiters
            except ProviderError as exc:
                if exc.code not in REFUSED_FOR_SURE or attempt == MAX_POLL_FAILURES:
                    raise
                wait = exc.retry_after_s if exc.retry_after_s is not None else self.rung.poll_s
                earliest = min(w.give_up_at for w in waiters)
                log.info("batch of %d refused (%s): again in %.1fs", len(items), exc.code, wait)
                await self._sleep(max(0.0, min(wait, earliest - self._clock())))
        return None  # not reached: the last attempt raises

    async def _intend(self, input_file_id: str, waiters: list[_Waiter]) -> None:
        """Await each caller's ``on_intent`` (in its context: the record is the request's)
        at once, for at most ``intent_wait_s``. A caller whose intent failed or did not come
        in time stays in the batch, unrecorded as when its ticket fails (only a crash before
        its ticket is written pays it again): leaving it out would take a second upload for
        the others and send it to the synchronous chain, at twice the price for sure."""
        writes = [
            asyncio.create_task(w.on_intent(input_file_id, w.item.custom_id), context=w.context)
            for w in waiters
            if w.on_intent is not None and not w.future.done()
        ]
        # never cancelled, even when this wait is: cancelling the wait for a changelog write
        # cancels the producer's future, which then fails to take the broker's answer
        for write in writes:
            self._writes.add(write)
            write.add_done_callback(self._written)
        if not writes:
            return
        done, pending = await asyncio.wait(writes, timeout=self.intent_wait_s)
        failed = [w for w in done if w.cancelled() or w.exception() or w.result() is not True]
        if failed or pending:
            log.warning(
                "batch file %s: %d of %d intents not recorded (%d failed, %d not in %.1fs): "
                "created anyway",
                input_file_id,
                len(failed) + len(pending),
                len(writes),
                len(failed),
                len(pending),
                self.intent_wait_s,
            )

    def _written(self, write: asyncio.Task[bool]) -> None:
        self._writes.discard(write)
        if not write.cancelled() and write.exception() is not None:
            log.error("recording a batched call's intent failed", exc_info=write.exception())

    async def _follow_guarded(
        self, batch_id: str, waiters: list[_Waiter], *, resumed: bool
    ) -> None:
        try:
            await self._follow(batch_id, waiters, resumed=resumed)
        except asyncio.CancelledError:
            _stop(waiters)
            raise
        except Exception as exc:
            log.exception("following batch %s crashed", batch_id)
            self._settle_all(waiters, _error("batch.crashed", type(exc).__name__))

    async def _follow_resumed(self, batch_id: str, group: list[_Waiter]) -> None:
        """Follow a batch a previous owner submitted, for the requests that come round; again
        when more joined while the results were being read."""
        try:
            while any(not w.future.done() for w in group):
                await self._follow_guarded(batch_id, group, resumed=True)
        finally:
            if self._resumed.get(batch_id) is group:
                del self._resumed[batch_id]

    async def _http(self, op: Callable[[], Awaitable[T]], exchanges: int = 1) -> T:
        return await self.gate(self.rung.provider, op, self.rung.timeout_s * exchanges)

    # --- following ---------------------------------------------------------------------------

    async def _follow(self, batch_id: str, waiters: list[_Waiter], *, resumed: bool) -> None:
        """Poll until the batch ends and hand out its results. When no caller waits any more,
        the batch is cancelled unless it is resumed (others may still come round for it) or,
        with durable tickets, some callers left with their partitions (their next owners
        resume it); it is still followed to its end when callers that gave up have answers
        to book, else left."""
        failures = 0
        next_poll = self._clock() if resumed else self._clock() + self.rung.poll_s
        draining = False  # cancelled at the provider: followed only to read what ran
        while True:
            self._give_up_late(waiters)
            open_waiters = [w for w in waiters if not w.future.done()]
            if not open_waiters and not draining:
                to_book = any(w.state == "late" and w.on_late is not None for w in waiters)
                # resumed: other requests of the batch may still come round; abandoned with
                # durable tickets: their next owners resume it. Either way never cancelled.
                keep = resumed or (self.durable and any(w.abandoned for w in waiters))
                if not keep:
                    await self._cancel(batch_id)
                if not to_book:
                    self._live.discard(batch_id)
                    return
                draining = True
            now = self._clock()
            if now < next_poll:
                wake = min([next_poll, *(w.give_up_at for w in open_waiters)])
                await self._sleep(max(0.0, wake - now))
                continue
            next_poll = now + self.rung.poll_s
            try:
                status = await self._http(lambda: self.client.status(batch_id))
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
                if exc.retry_after_s is not None:  # a 429's Retry-After, an open breaker's wait
                    next_poll = max(next_poll, self._clock() + exc.retry_after_s)
                if exc.code == BREAKER_OPEN:
                    continue  # the provider is down, not this batch: the give-up time bounds it
                failures += 1
                if not exc.retryable or failures >= MAX_POLL_FAILURES:
                    log.warning("giving up on batch %s: %s", batch_id, exc.message)
                    self._settle_all(waiters, exc)
                    return

    async def _deliver(self, status: BatchStatus, waiters: list[_Waiter]) -> None:
        # the calls given up on are read too: the provider bills their answers all the same
        waiters = list(waiters)  # a resumed batch's group may grow while the results download
        calls = {w.item.custom_id: w.item.call for w in waiters}
        results = await self._http(lambda: self.client.results(status, calls), 2)
        absent = "batch.missing" if status.status in ("completed", "ended") else None
        absent = absent or f"batch.{status.status}"
        late_cost = 0.0
        for waiter in waiters:
            outcome = results.get(waiter.item.custom_id)
            if waiter.state != "late" or outcome is None:
                continue
            late_cost += self.rung.price.cost(outcome.usage)
            waiter.late_answer(outcome)
        if late_cost > 0:
            self.stats.late_cost += late_cost
            self._late_cost.inc(late_cost)
            log.warning(
                "batch %s answered calls already sent to the chain: $%.6f billed, booked late",
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
                    _error("batch.late", "no batch result while time was left for the sync chain"),
                    "late",
                )

    async def _cancel(self, batch_id: str) -> None:
        self.stats.cancelled_batches += 1
        try:
            await self._http(lambda: self.client.cancel(batch_id))
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
        if not waiter.submitted.done():
            waiter.submitted.cancel()


def _error(code: str, message: str) -> ProviderError:
    return ProviderError(code, message)
