"""A Faust consumer that never commits an offset past an event it has not processed.

Measured here (faust-streaming 0.15.3, aiokafka 0.14, Kafka 4.1.1): when two workers started
together and a burst followed, up to 23 of 3,000 requests per trial were never processed and
never dead-lettered. The behaviours below combine into that loss; each is corrected here, at the
consumer, where offsets are decided:

1. ``AIOKafkaConsumer.seek_to_committed`` only seeks when the committed offset is > 0, so a
   partition kept across a rebalance with no commit yet (or a commit of 0) is *not* rewound,
   and the events prefetched before the rebalance are never fetched again.
   -> :meth:`SafeConsumer.perform_seek` seeks every assigned partition explicitly (to the
   committed offset, or to the beginning when there is none: the line resets to earliest),
   and remembers that start as the committed offset.
2. Events of an older consumer generation that reach a stream after a rebalance are skipped
   *and acknowledged*, so their offsets become committable although nothing processed them.
   -> :meth:`SafeConsumer.ack` ignores acknowledgements of older generations; those events
   are fetched again after the seek above and acknowledged then. (Faust's Cython stream
   iterator inlines the acknowledgement and skips such events without one: same effect.)
3. ``Consumer._drain_messages`` drops a fetched event whose offset is below the highest offset
   read so far, and books every forward jump as a gap. A batch fetched before the
   post-rebalance seek can still be draining after it, and ``getmany`` drops records of a
   partition paused mid-batch, so events were dropped or booked as gaps (measured: jumps of
   5-7 offsets booked on topics that have no gaps at all).
   -> :meth:`SafeConsumer._drain_messages` delivers every fetched event, rewinds a partition
   whose offsets jump, and books a gap only when the same jump recurs after the rewind.
4. ``Consumer._add_gap`` books the event that revealed a gap as part of the gap, so it counted
   as acknowledged before any stream saw it. -> :meth:`SafeConsumer._add_gap`.
5. Whatever else drops an event on its way to a stream (never found upstream by reading; seen
   as a partition whose committed offset stopped at an event no stream ever took while later
   events were processed) -> :meth:`SafeConsumer._new_offset` notices exactly that state and
   rewinds the partition to the committed offset, so the event is fetched again.
6. ``FlowControlEvent.resume()`` (mode) empties every stream queue, and Faust's recovery calls it
   *after* ``perform_seek``: events fetched from the committed offset in between are queued,
   then wiped, and nothing fetches them again. Measured: a worker restarted after a kill
   stalled with the rest of each partition fetched and gone (aiokafka at the log end, the
   committed offset behind it, every queue empty, nothing in progress).
   -> :meth:`SafeConsumer._guard_queue_clears` notes the lowest queued offset per partition
   before a clear that resumes the flow, and fetches the partition again from there.
7. ``Consumer._new_offset`` tolerates a one-offset hole at the head of the acknowledged list
   (``min(acked) - committed > 1``) and skips the check entirely while nothing is committed,
   and with concurrent agents an event still in progress can be passed by later ones.
   -> :meth:`SafeConsumer._new_offset` commits only the consecutive run that starts at the
   committed offset and ends before the lowest event still being processed.
   "Still being processed" means unacknowledged messages that are not marked acked:
   ``Consumer.ack`` leaves a second copy of an already-acknowledged offset in
   ``_unacked_messages`` (marked acked). Measured in the kill chaos scenario: a partition's
   commit stuck at an offset whose events were all done, for minutes, until a rebalance.
8. A stream acknowledges its event when the agent body raises or is cancelled, so an event
   whose dead letter could not be written was committed past and lost.
   -> :meth:`SafeConsumer.hold` keeps such a message unacknowledged (no commit passes it)
   until the next seek fetches it again.
9. Whatever acknowledges an event no stream ever took (measured: a request in the kill chaos
   scenario whose partition's commit passed it although it never reached any topic after
   ``.requests``). -> :class:`_TakenSet` notes every offset a stream takes (streams add each
   event's message to Faust's unacknowledged set when they take it), and
   :meth:`SafeConsumer._new_offset` commits only past taken offsets (or booked gaps); an
   acknowledged offset that was never taken is fetched again, and the warning says so.
10. Faust's ``_seek`` calls aiokafka's ``seek`` from the app's thread while the fetcher runs
    on the consumer's thread. -> :meth:`SafeConsumer._seek` seeks on the consumer's thread.
11. An event taken by a stream but acknowledged without its stage having seen it through
    (the kill chaos scenario lost requests whose commit passed them after "queued when the
    flow resumed: refetching", with item 9 in place: taken, then acknowledged unprocessed).
    -> ``StageIO.handling`` reports every event it saw through (processed, dead-lettered or
    held) with :meth:`SafeConsumer.handled`; on the topics stages report, only handled offsets
    are committed past, and an acknowledged offset that was not handled is fetched again.

12. Faust's livelock detector asserted on a partition whose position aiokafka was still
    resetting and crashed the consumer. -> :meth:`SafeConsumer.verify_event_path` skips it.
13. Not a loss, a throttle: Faust hands each fetched event to the streams through
    ``wait_first`` (four new tasks, two event loop passes per event). With a few hundred
    provider calls in flight a pass takes milliseconds, so every stage's intake fell to tens
    of events a second and a HIGH request waited behind 10,000 NORMAL ones in Kafka, where
    no priority applies (bench.providers priority, issue 16). -> :meth:`SafeConsumer._deliver`
    awaits the hand-over directly when it cannot wait for anything.

14. Not a loss, a stall: when a stream's queue is nearly full, Faust takes its partition out of
    the fetch (``on_buffer_full``) and puts it back once the queue has drained to 40%
    (``on_buffer_drop``); but the fetch under way waits up to its whole timeout (1 s) for
    records of the other partitions, and with none active Faust sleeps 1 s. The partition put
    back waited for that: measured in a worker taking 10,000 requests (bench.providers
    priority, issue 16), the generate stream drained its queue and then stood idle for
    0.25-0.4 s, two or three times per 10,000 events. -> while a partition is out for
    pressure, :meth:`SafeConsumer._drain_messages` fetches with a short timeout
    (:data:`BACKED_UP_FETCH_S`), and :meth:`SafeConsumer._wait_next_records` sleeps no longer
    than that timeout. What remains (measured, fetch calls logged): the fetch of the partition
    put back then takes 0.1-0.25 s under that load, so the queue still ran dry once, for
    0.25-0.38 s, in two of three runs.

``python -m bench.rebalance`` reproduces the rebalance scenario and ``python -m bench.chaos``
the kills, the rebalance and a broker outage (``--repeat 5``: 5 of 5 runs without a loss);
tests/integration/test_chaos.py runs its quick profile in CI, and
tests/streams/test_safe_consumer.py pins the offset bookkeeping.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from weakref import WeakSet

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import Consumer, Transport
from faust.types import TP
from faust.utils.functional import consecutive_numbers

#: How long one fetch waits for records (Faust's own choice).
FETCH_TIMEOUT_S = 1.0
#: ... while a partition is out of the fetch for its stream's full queue (item 14): it comes
#: back once that queue has drained to 40%, and its records must reach the queue before the
#: stream has taken the rest (1,638 events of 4,096, tens of milliseconds).
BACKED_UP_FETCH_S = 0.02
#: At most one rewind per partition in this many seconds (commits run about every second).
REWIND_INTERVAL_S = 5.0
#: An event in progress this long at the head of its partition is reported (once): it holds
#: every later commit of the partition, so a stuck handler shows as growing redelivery.
STALLED_AFTER_S = 60.0


class SafeConsumer(Consumer):
    """Faust's aiokafka consumer with offset bookkeeping that cannot skip events."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Partition -> (last offset read, offset after the jump) awaiting confirmation.
        self._suspected_gaps: dict[Any, tuple[int, int]] = {}
        self._last_rewind: dict[Any, float] = {}
        self._rewind_tasks: set[asyncio.Future[None]] = set()
        #: Partitions being rewound: what the fetch loop holds for them now is fetched again.
        self._rewinding: set[Any] = set()
        #: The event the fetch loop is handing to a stream (a clear can cancel that hand-over).
        self._delivering: Any = None
        #: Messages that must not be acknowledged (item 8), by identity; strong references,
        #: because Faust tracks unacknowledged messages in a WeakSet.
        self._held: dict[int, Any] = {}
        #: Partition -> (offset in progress at its head, since when, reported yet).
        self._head_in_progress: dict[Any, tuple[int, float, bool]] = {}
        #: Partition -> offsets a stream has taken (item 9): only those may be committed past.
        self._taken: dict[Any, set[int]] = {}
        self._unacked_messages = _TakenSet(self._taken)
        #: Partition -> offsets a stage saw through (StageIO.handling), for topics in
        #: ``_handled_topics`` (those a stage has reported at least once): item 11.
        self._handled: dict[Any, set[int]] = {}
        self._handled_topics: set[str] = set()
        #: Partition -> offsets booked as gaps (never delivered by Kafka), committable.
        self._filled: dict[Any, set[int]] = {}
        #: Topic -> how long its events may wait by design before one is reported as stalled.
        self._expected_waits: dict[str, float] = {}
        #: Partition -> offsets in progress, while one commit works out its offsets.
        self._in_progress_index: dict[Any, list[int]] | None = None

    async def on_start(self) -> None:
        await super().on_start()
        self._guard_queue_clears()

    def _guard_queue_clears(self) -> None:
        """Refetch what a resuming flow control wipes from the stream queues (item 6 above).

        A clear while the flow is suspended (a rebalance starting) is left alone: the seek to
        the committed offsets after the rebalance fetches those events again.
        """
        flow = self.app.flow_control
        clear_queues = flow.clear

        def clear() -> None:
            dropped = self._queued_offsets(list(flow._queues))
            clear_queues()
            if flow.is_active():
                for tp, offset in dropped.items():
                    self.log.info(
                        "%s@%s+ were queued when the flow resumed: refetching", tp, offset
                    )
                    self._start_rewind(tp, offset)

        flow.clear = clear  # type: ignore[method-assign]

    def _queued_offsets(self, queues: list[Any]) -> dict[Any, int]:
        """The lowest offset per stream partition among queued events (and the one in hand)."""
        messages = [getattr(item, "message", None) for q in queues for item in list(q._queue)]
        messages.append(self._delivering)
        assigned = self.assignment()
        lowest: dict[Any, int] = {}
        for message in messages:
            if message is None:
                continue
            tp = message.tp
            if tp not in assigned or self._is_changelog_tp(tp):
                continue
            if not self.app.topics.acks_enabled_for(message.topic):
                continue
            lowest[tp] = min(message.offset, lowest.get(tp, message.offset))
        return lowest

    def hold(self, message: Any) -> None:
        """Never acknowledge ``message``: its partition commits no further until the next seek
        (a rebalance or restart), which fetches it again from the committed offset."""
        self._held[id(message)] = message

    def handled(self, message: Any) -> None:
        """A stage saw ``message`` through (processed, dead-lettered or held): item 11."""
        self._handled_topics.add(message.topic)
        self._handled.setdefault(message.tp, set()).add(message.offset)

    def release(self, message: Any) -> None:
        """Undo :meth:`hold` (the work it waited for got done after all)."""
        self._held.pop(id(message), None)

    async def perform_seek(self) -> None:
        self._held.clear()  # everything from the committed offsets on is fetched again
        committed: dict[Any, int | None] = dict(await self.seek_to_committed())
        for tp, offset in committed.items():
            if offset == 0:
                await self._seek(tp, 0)
        never = [tp for tp, offset in committed.items() if offset is None]
        if never:
            starts = await self._thread.call_thread(self._seek_to_beginning, never)
            committed.update(starts)
        for tp, offset in committed.items():
            # The read mark is the offset *before* the next one, so that a gap right at the
            # seek position (a transaction marker) is still booked.
            self._read_offset[tp] = offset - 1 if offset else None
            self._committed_offset[tp] = offset

    async def _seek(self, partition: TP, offset: int) -> None:
        """Seek on the consumer's own thread (item 10).

        Faust's driver calls ``AIOKafkaConsumer.seek`` straight from the app's thread, while
        the consumer's fetcher runs on its own thread and event loop. Measured in the kill
        chaos scenario: a rewind's seek landed in the middle of ``fetched_records`` and
        crashed the fetcher (``KeyError`` in ``del self._records[tp]``), which stopped the
        worker; a seek racing a fetch response can equally move the position under it.
        """
        consumer = self._thread._ensure_consumer()
        await self._thread.call_thread(consumer.seek, partition, offset)

    def verify_event_path(self, now: float, tp: TP) -> None:
        """Faust's livelock check, which must not crash the consumer (item 12).

        It reads aiokafka's position for each partition from the app's thread, and that
        position is unset while a reset or seek is under way (``seek_to_beginning`` for a
        partition with no commit): aiokafka then asserts, and the assertion stopped a worker
        in the kill chaos scenario. A partition whose position is not known yet has nothing
        to verify.
        """
        try:
            super().verify_event_path(now, tp)
        except AssertionError:
            return

    async def _seek_to_beginning(self, tps: list[Any]) -> dict[Any, int]:
        """Rewind and return where each partition now starts (the log start offset)."""
        consumer = self._thread._ensure_consumer()
        await consumer.seek_to_beginning(*tps)
        return {tp: await consumer.position(tp) for tp in tps}

    def ack(self, message: Any) -> bool:
        if id(message) in self._held:
            return False  # stays unacknowledged: see hold()
        stale = message.generation_id != self.app.consumer_generation_id
        if stale or not self.app.flow_control.is_active():
            # Skipped during a rebalance (or finished in an older generation): the seek after
            # the rebalance fetches it again, and that copy is acknowledged instead.
            message.acked = True
            return False
        result: bool = super().ack(message)
        return result

    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked[tp]
        if not acked:
            return None
        self._fill_gaps(tp, acked)
        acked.sort()
        committed = self._committed_offset[tp]
        # An acknowledged message is done even while it is still in the set: Faust discards
        # it only when its offset was not acknowledged before, so a second copy of an event
        # (fetched again by a seek or rewind) stays there, acked, until a wait_empty cleans up.
        # Counted as in progress, it held the commit (and the head-hole rewind) forever.
        in_progress = self._in_progress_of(tp)
        start = committed if committed is not None else min([acked[0], *in_progress])
        self._note_head(tp, start if start in in_progress else None)
        stale = [offset for offset in acked if offset < start]
        if stale:
            acked[: len(stale)] = []
            self._acked_index[tp].difference_update(stale)
        if not acked or acked[0] != start:
            if acked and start not in in_progress:
                # Later events are done but the one at the committed offset was never taken
                # by a stream (streams take a partition's events in order): it was dropped
                # on the way. Fetch the partition again from there.
                self._request_rewind(tp, start)
            return None
        batch = list(next(consecutive_numbers(acked)))
        gaps = self._gap_offsets(tp, batch)
        taken = self._taken.setdefault(tp, set())
        handled = self._handled.setdefault(tp, set())
        for seen in (taken, handled):
            if seen and min(seen) < start:
                seen.difference_update([offset for offset in seen if offset < start])
        check_handled = tp.topic in self._handled_topics
        never = [
            offset
            for offset in batch
            if offset not in gaps
            and (offset not in taken or (check_handled and offset not in handled))
        ]
        if never:
            # Acknowledged, yet no stream took it or no stage saw it through: committing would
            # lose it. Commit up to it and fetch it again from there.
            how = "never taken by a stream" if never[0] not in taken else "never handled"
            self.log.warning("%s@%s was acknowledged but %s: refetching it", tp, never[0], how)
            batch = [offset for offset in batch if offset < never[0]]
            if self._request_rewind(tp, never[0]):
                self._forget_acked(tp, [offset for offset in acked if offset >= never[0]])
            if not batch:
                return None
        if in_progress:
            limit = min(in_progress)
            batch = [offset for offset in batch if offset < limit]
            if not batch:
                return None
        acked[: len(batch)] = []
        self._acked_index[tp].difference_update(batch)
        new_offset: int = batch[-1] + 1
        taken.difference_update(range(start, new_offset))
        handled.difference_update(range(start, new_offset))
        return new_offset

    def _filter_committable_offsets(self, tps: Any) -> dict[TP, int]:
        """Faust's, with the events in progress indexed by partition once per commit.

        :meth:`_new_offset` needs the events in progress of its partition; found by scanning
        every unacknowledged message for each partition with acknowledgements, a commit with
        a backlog taken in (up to ``stage_max_waiting`` events per stage) cost tens of
        thousands of messages times every partition, on the event loop, and Faust's
        commit timer reported commits overlapping for seconds (issue 16 priority bench).
        """
        index: dict[TP, list[int]] = {}
        for message in self._unacked_messages:
            if not message.acked:
                index.setdefault(message.tp, []).append(message.offset)
        self._in_progress_index = index
        try:
            offsets: dict[TP, int] = {}
            for tp in tps:
                offset = self._new_offset(tp)
                if offset is not None and self._should_commit(tp, offset):
                    offsets[tp] = offset
            return offsets
        finally:
            self._in_progress_index = None

    def _in_progress_of(self, tp: TP) -> list[int]:
        """Offsets of ``tp`` taken by a stream and not acknowledged yet."""
        index: dict[Any, list[int]] | None = getattr(self, "_in_progress_index", None)
        if index is not None:
            return index.get(tp, [])
        return [m.offset for m in self._unacked_messages if m.tp == tp and not m.acked]

    def _gap_offsets(self, tp: TP, batch: list[int]) -> set[int]:
        """Offsets in ``batch`` that are booked gaps (filled in by :meth:`_fill_gaps`)."""
        filled = self._filled.get(tp)
        if not filled:
            return set()
        found = {offset for offset in batch if offset in filled}
        filled.difference_update(found)
        return found

    def _forget_acked(self, tp: TP, offsets: list[int]) -> None:
        """Drop acknowledgements that will come again with the refetched copies."""
        drop = set(offsets)
        self._acked[tp][:] = [offset for offset in self._acked[tp] if offset not in drop]
        self._acked_index[tp].difference_update(drop)

    def _note_head(self, tp: TP, offset: int | None) -> None:
        """Report (once) an event in progress at the committed offset for ``STALLED_AFTER_S``:
        no commit of its partition passes it, so a stuck handler shows as growing lag."""
        if offset is None:
            self._head_in_progress.pop(tp, None)
            return
        now = time.monotonic()
        seen = self._head_in_progress.get(tp)
        if seen is None or seen[0] != offset:
            self._head_in_progress[tp] = (offset, now, False)
        elif not seen[2] and now - seen[1] >= self._stalled_after(tp.topic):
            self._head_in_progress[tp] = (offset, seen[1], True)
            self.log.warning(
                "event %s@%s has been in progress for %.0fs: no commit passes it until it ends",
                tp,
                offset,
                now - seen[1],
            )

    def expect_waits(self, topic: str, seconds: float) -> None:
        """Events of ``topic`` may wait up to ``seconds`` by design (a deferred delivery held
        until due, up to ``deliver_defer_max_s``): report one as stalled only past that."""
        self._expected_waits[topic] = max(seconds, self._expected_waits.get(topic, 0.0))

    def _stalled_after(self, topic: str) -> float:
        return STALLED_AFTER_S + self._expected_waits.get(topic, 0.0)

    def _request_rewind(self, tp: TP, offset: int) -> bool:
        """Refetch ``tp`` from ``offset`` unless it was rewound moments ago; True if started.

        Not while the app or the consumer stops: the app's stop clears the flow, which drops
        the stage pools' waiting events (``streams.pooled_stage``), and its last commits then
        see those heads missing; nothing is fetched any more, and the partition's next owner
        starts at the committed offset anyway. Measured: each stop of a worker with a backlog
        taken in warned that every partition's head "was dropped before any stream took it".
        """
        if self.should_stop or self.app.should_stop:
            return False
        now = time.monotonic()
        if now - self._last_rewind.get(tp, float("-inf")) < REWIND_INTERVAL_S:
            return False
        self._last_rewind[tp] = now
        self.log.warning(
            "event %s@%s was dropped before any stream took it: refetching", tp, offset
        )
        self._start_rewind(tp, offset)
        return True

    def _start_rewind(self, tp: TP, offset: int) -> None:
        """Fetch ``tp`` again from ``offset``; the fetch loop drops its events until then."""
        self._rewinding.add(tp)
        self._suspected_gaps.pop(tp, None)  # a jump seen before this rewind proves nothing
        self._read_offset[tp] = offset - 1 if offset else None
        task = asyncio.ensure_future(self._rewind(tp, offset))
        self._rewind_tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._rewind_tasks.discard)

    async def _rewind(self, tp: TP, offset: int) -> None:
        try:
            await self._seek(tp, offset)
            self._read_offset[tp] = offset - 1 if offset else None
        finally:
            self._rewinding.discard(tp)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - loop body
        """Faust's fetch loop, with a jump in offsets treated as "something was dropped".

        Upstream drops a fetched event whose offset is below the highest offset read so far,
        and books any forward jump as a gap (offsets that then count as acknowledged). Around
        rebalances both are wrong: batches fetched before a seek drain after it, and Faust's
        own ``getmany`` silently drops records of partitions paused mid-batch. Here every
        fetched event is delivered (a duplicate is harmless: the ledger keeps completions
        single), and on a forward jump the partition is rewound to the first missing offset.
        Only a jump that recurs identically after the rewind (a transaction marker or a
        compacted record: nothing there to fetch) is booked as a gap.
        """
        callback = self.callback
        last_read = self._read_offset
        while not (self._stopped.is_set() or fetcher._stopped.is_set()):
            self.diag.set_flag(CONSUMER_FETCHING)
            try:
                await self.sleep(0)
                if self.should_stop:
                    continue
                rewound: set[Any] = set()
                async for tp, message in self.getmany(timeout=self._fetch_timeout()):
                    if tp in rewound or tp in self._rewinding:
                        continue  # fetched again after the rewind
                    last = last_read[tp]
                    if (
                        last is not None
                        and message.offset > last + 1
                        and not await self._is_real_gap(tp, message, last)
                    ):
                        rewound.add(tp)
                        continue
                    await self._deliver(message, callback)
                    last_read[tp] = message.offset
                    # Only a jump seen again right after its own refetch is a real gap.
                    self._suspected_gaps.pop(tp, None)
            except self.consumer_stopped_errors:
                if self.transport.app.should_stop:
                    return
                raise
            except asyncio.CancelledError:
                if self.transport.app.should_stop:
                    return
                raise
            finally:
                self.diag.unset_flag(CONSUMER_FETCHING)

    def _fetch_timeout(self) -> float:
        """Short while a partition is out of the fetch for a full queue (item 14)."""
        return BACKED_UP_FETCH_S if self._buffered_partitions else FETCH_TIMEOUT_S

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        """Faust's, except that with no partition active it sleeps ``timeout``, not 1 s (item
        14): the partitions out for a full queue come back while it sleeps."""
        if self._get_active_partitions() or self.app.client_only:
            return await super()._wait_next_records(timeout)
        if not self.flow_active:
            await self.wait(self.can_resume_flow)  # type: ignore[arg-type]
        try:
            self.not_waiting_next_records.set()
            await self.sleep(min(timeout, FETCH_TIMEOUT_S))
            return {}, self._get_active_partitions()
        finally:
            self.not_waiting_next_records.set()

    async def _is_real_gap(self, tp: TP, message: Any, last: int) -> bool:
        """First sight of a jump: rewind and say no. Same jump again: book it, say yes."""
        jump = (last, message.offset)
        if self._suspected_gaps.get(tp) == jump:
            del self._suspected_gaps[tp]
            if self.app.topics.acks_enabled_for(message.topic):
                self.log.warning(
                    "offsets %s-%s on %s are not there (seen twice): counted as done",
                    last + 1,
                    message.offset - 1,
                    tp,
                )
                await self._add_gap(tp, last + 1, message.offset)
            return True
        self._suspected_gaps[tp] = jump
        self.log.info("offsets jumped on %s (%s -> %s): fetching again", tp, last, message.offset)
        await self._seek(tp, last + 1)
        return False

    async def _deliver(self, message: Any, callback: Any) -> None:
        """Hand ``message`` to its streams (Faust's conductor callback, ``on_message``).

        Faust races the hand-over against ``suspend_flow`` (a rebalance) with ``wait_first``,
        which starts four tasks and takes two trips round the event loop for every message
        fetched (item 13). When the hand-over cannot wait (:meth:`_hand_over_is_immediate`),
        it is awaited directly: it finishes before anything else runs, as it would have won
        the race.
        """
        commit_every = self._commit_every
        if commit_every is not None and self._n_acked >= commit_every:
            self._n_acked = 0
            await self.commit()
        self._delivering = message
        try:
            if self._hand_over_is_immediate(message.tp):
                await callback(message)
            else:
                await self.wait_first(callback(message), self.suspend_flow.wait())
        finally:
            self._delivering = None

    def _hand_over_is_immediate(self, tp: TP | None = None) -> bool:
        """True when Faust's ``on_message`` would not wait for anything: the flow runs (no
        rebalance), the producer buffer is within its limit (else it waits for it to ebb) and
        no queue of a stream taking ``tp`` is full (else it waits for room)."""
        app = self.app
        flow = app.flow_control
        if self.suspend_flow.is_set() or not flow.is_active():
            return False
        buffer = app.producer.buffer
        if buffer.size > buffer.max_messages:
            return False
        for queue in self._queues_taking(tp):
            full = getattr(queue, "full", None)
            if full is not None and full():
                return False
        return True

    def _queues_taking(self, tp: TP | None) -> list[Any]:
        """The queues Faust's conductor puts ``tp``'s events in (its ``_tp_index``: the
        channels subscribed to it), else every flow-control queue (every stream queue is one).

        Scanning all of them for every event fetched cost 11 us per event with 30 queues
        (a worker has more), a tenth of a stage's intake of a backlog (issue 16).
        """
        index = getattr(self.app.topics, "_tp_index", None)
        channels = index.get(tp) if index is not None and tp is not None else None
        if not channels:
            return list(self.app.flow_control._queues)
        return [channel.queue for channel in channels]

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Book offsets ``offset_from`` up to, not including, ``offset_to`` as never delivered.

        ``offset_to`` is the event that revealed the gap. Upstream books that event too (so it
        counted as acknowledged before any stream saw it) and never books the committed offset.
        """
        committed = self._committed_offset[tp]
        if committed is not None:
            offset_from = max(offset_from, committed)
        if offset_from < offset_to:
            gaps = self._gap[tp]
            gaps.addi(offset_from, offset_to)
            gaps.merge_overlaps()

    def _fill_gaps(self, tp: TP, acked: list[int]) -> None:
        """Offsets Kafka never delivers (transaction markers, compaction) count as acked.

        Same bookkeeping as Faust's own ``_new_offset``.
        """
        gaps = self._gap[tp]
        if not gaps:
            return
        max_offset = max(acked)
        candidates = sorted(gaps.overlap(0, max_offset), key=lambda gap: gap.begin)
        if candidates:
            filled: list[int] = []
            for gap in candidates:
                filled.extend(range(gap.begin, gap.end))
            acked.extend(filled)
            self._filled.setdefault(tp, set()).update(filled)
            gaps.chop(0, max(filled[-1], max_offset + 1))


class _TakenSet(WeakSet):  # type: ignore[type-arg]
    """Faust's set of unacknowledged messages, also noting each offset a stream takes.

    Streams add an event's message here when they take it (both the Python and the Cython
    stream iterator bind this ``add``), so it is the one place that sees every take.
    """

    def __init__(self, taken: dict[Any, set[int]]) -> None:
        super().__init__()
        self._taken_offsets = taken

    def add(self, item: Any) -> None:
        super().add(item)
        self._taken_offsets.setdefault(item.tp, set()).add(item.offset)


class SafeTransport(Transport):
    """The aiokafka transport with :class:`SafeConsumer`."""

    Consumer = SafeConsumer
