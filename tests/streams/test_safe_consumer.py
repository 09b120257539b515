"""Offset bookkeeping of SafeConsumer: never commit past an event nobody processed.

These call the methods on a small stand-in for the consumer's state, since the real consumer
needs a running app; the end-to-end proof is the integration test with a joining worker.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP as FaustTP
from intervaltree import IntervalTree
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from streams.safe_consumer import BACKED_UP_FETCH_S, FETCH_TIMEOUT_S, SafeConsumer

TP = FaustTP("requests", 0)


def state(
    committed: int | None,
    acked: list[int],
    in_progress: tuple[int, ...] = (),
    acked_copies: tuple[int, ...] = (),
) -> Any:
    messages = [SimpleNamespace(tp=TP, offset=o, acked=False) for o in in_progress]
    messages += [SimpleNamespace(tp=TP, offset=o, acked=True) for o in acked_copies]
    fake = SimpleNamespace(
        _acked=defaultdict(list, {TP: list(acked)}),
        _acked_index=defaultdict(set, {TP: set(acked)}),
        _committed_offset=defaultdict(lambda: None, {TP: committed}),
        _unacked_messages=messages,
        _gap=defaultdict(IntervalTree),
    )
    fake._fill_gaps = lambda tp, acked: SafeConsumer._fill_gaps(fake, tp, acked)  # type: ignore[arg-type]
    fake._new_offset = lambda tp: SafeConsumer._new_offset(fake, tp)  # type: ignore[arg-type]
    fake._in_progress_of = lambda tp: SafeConsumer._in_progress_of(fake, tp)  # type: ignore[arg-type]
    fake._head_in_progress = {}
    # Every acknowledged or in-progress offset was taken by a stream, unless a test says not.
    fake._taken = {TP: set(acked) | set(in_progress) | set(acked_copies)}
    fake._filled = {}
    fake._handled = {TP: set(acked) | set(acked_copies)}
    fake._handled_topics = set()
    fake._gap_offsets = lambda tp, batch: SafeConsumer._gap_offsets(fake, tp, batch)  # type: ignore[arg-type]
    fake._forget_acked = lambda tp, offsets: SafeConsumer._forget_acked(fake, tp, offsets)  # type: ignore[arg-type]
    fake.warnings = []
    fake.log = SimpleNamespace(warning=lambda *args: fake.warnings.append(args[0] % args[1:]))
    fake._note_head = lambda tp, offset: SafeConsumer._note_head(fake, tp, offset)  # type: ignore[arg-type]
    fake._expected_waits = {}
    fake._stalled_after = lambda topic: SafeConsumer._stalled_after(fake, topic)  # type: ignore[arg-type]
    fake.rewinds = []
    fake._request_rewind = lambda tp, offset: fake.rewinds.append((tp, offset)) or True
    return fake


def new_offset(fake: Any) -> int | None:
    return SafeConsumer._new_offset(fake, TP)  # type: ignore[arg-type]


def test_commits_the_run_that_starts_at_the_committed_offset() -> None:
    fake = state(committed=5, acked=[5, 6, 7, 9])
    assert new_offset(fake) == 8
    assert fake._acked[TP] == [9]


def test_a_one_event_hole_at_the_head_blocks_the_commit_and_refetches_it() -> None:
    # Upstream commits 8 here (it tolerates min(acked) - committed == 1): event 5 would be lost.
    fake = state(committed=5, acked=[6, 7])
    assert new_offset(fake) is None
    assert fake.rewinds == [(TP, 5)]  # no stream holds event 5: it was dropped, fetch again


def test_head_hole_is_checked_when_committed_offset_is_zero() -> None:
    # Upstream skips the check when the committed offset is 0 (falsy).
    fake = state(committed=0, acked=[1, 2, 3])
    assert new_offset(fake) is None
    assert fake.rewinds == [(TP, 0)]


@pytest.mark.parametrize(
    ("app_stops", "consumer_stops"), [(False, False), (True, False), (False, True)]
)
def test_a_stopping_worker_neither_refetches_nor_warns(
    app_stops: bool, consumer_stops: bool
) -> None:
    """Its last commits see the heads the stopped stages dropped; the next owner refetches."""
    started: list[tuple[Any, int]] = []
    warnings: list[str] = []
    stopping = app_stops or consumer_stops
    fake = SimpleNamespace(
        should_stop=consumer_stops,
        app=SimpleNamespace(should_stop=app_stops),
        _last_rewind={},
        _start_rewind=lambda tp, offset: started.append((tp, offset)),
        log=SimpleNamespace(warning=lambda *args: warnings.append(args[0] % args[1:])),
    )
    assert SafeConsumer._request_rewind(fake, TP, 5) is not stopping  # type: ignore[arg-type]
    assert started == ([] if stopping else [(TP, 5)])
    assert len(warnings) == (0 if stopping else 1)


def test_a_head_event_still_in_progress_is_waited_for_not_refetched() -> None:
    fake = state(committed=5, acked=[6, 7], in_progress=(5,))
    assert new_offset(fake) is None
    assert fake.rewinds == []


def test_never_passes_an_event_still_being_processed() -> None:
    fake = state(committed=None, acked=[11, 12, 13], in_progress=(10,))
    assert new_offset(fake) is None
    fake = state(committed=10, acked=[10, 11, 13, 14], in_progress=(12,))
    assert new_offset(fake) == 12


def test_an_acked_second_copy_left_in_the_unacked_set_does_not_hold_the_commit() -> None:
    """Faust's ``ack`` marks a second copy of an already-acknowledged offset acked but leaves
    it in ``_unacked_messages``. Seen in the kill chaos scenario: committed 139, 139-147 all
    acknowledged, copies of 139/143/144/146/147 left in the set, and no commit for minutes."""
    fake = state(committed=139, acked=list(range(139, 148)), acked_copies=(139, 143, 144))
    assert new_offset(fake) == 148
    # A stale acked copy must not pass for "in progress" at a head hole either: refetch.
    fake = state(committed=5, acked=[6, 7], acked_copies=(5,))
    assert new_offset(fake) is None
    assert fake.rewinds == [(TP, 5)]


def test_stale_acknowledgements_below_the_committed_offset_are_dropped() -> None:
    fake = state(committed=7, acked=[3, 4, 7, 8])
    assert new_offset(fake) == 9
    assert fake._acked[TP] == []
    assert fake._acked_index[TP] == set()


def test_booked_gaps_count_as_acknowledged() -> None:
    fake = state(committed=5, acked=[5, 8])
    fake._gap[TP].addi(6, 8)  # offsets 6 and 7 were transaction markers
    assert new_offset(fake) == 9


def test_add_gap_books_only_the_missing_offsets() -> None:
    fake = state(committed=4, acked=[])
    asyncio.run(SafeConsumer._add_gap(fake, TP, 5, 7))  # type: ignore[arg-type]
    assert sorted((i.begin, i.end) for i in fake._gap[TP]) == [(5, 7)]
    # Below the committed offset nothing is booked; the committed offset itself can be.
    fake = state(committed=4, acked=[])
    asyncio.run(SafeConsumer._add_gap(fake, TP, 2, 5))  # type: ignore[arg-type]
    assert sorted((i.begin, i.end) for i in fake._gap[TP]) == [(4, 5)]


def _acking_consumer(generation: int, flow_active: bool) -> Any:
    app = SimpleNamespace(
        consumer_generation_id=generation,
        flow_control=SimpleNamespace(is_active=lambda: flow_active),
    )
    return SimpleNamespace(app=app, _held={})


def test_acks_of_an_older_generation_are_ignored() -> None:
    message = SimpleNamespace(generation_id=1, acked=False)
    consumer = _acking_consumer(generation=2, flow_active=True)
    assert SafeConsumer.ack(consumer, message) is False  # type: ignore[arg-type]
    assert message.acked is True


def test_acks_while_flow_is_suspended_are_ignored() -> None:
    message = SimpleNamespace(generation_id=2, acked=False)
    consumer = _acking_consumer(generation=2, flow_active=False)
    assert SafeConsumer.ack(consumer, message) is False  # type: ignore[arg-type]
    assert message.acked is True


def test_a_held_message_is_never_acknowledged_so_no_commit_passes_it() -> None:
    """Issue 12 #2: a stream acknowledges its event even when the agent was cancelled while
    the event's dead letter could not be written; held, it stays in progress until a seek."""
    message = SimpleNamespace(generation_id=2, acked=False, tp=TP, offset=5)
    consumer = _acking_consumer(generation=2, flow_active=True)
    SafeConsumer.hold(consumer, message)  # type: ignore[arg-type]
    assert SafeConsumer.ack(consumer, message) is False  # type: ignore[arg-type]
    assert message.acked is False
    fake = state(committed=5, acked=[6, 7], in_progress=(5,))  # 5 stays unacknowledged
    assert new_offset(fake) is None
    SafeConsumer.release(consumer, message)  # type: ignore[arg-type]
    assert consumer._held == {}


def test_a_seek_forgets_held_messages_since_it_fetches_them_again() -> None:
    message = SimpleNamespace(generation_id=2, acked=False)
    consumer = _acking_consumer(generation=2, flow_active=True)
    SafeConsumer.hold(consumer, message)  # type: ignore[arg-type]

    async def seek_to_committed() -> dict[Any, int]:
        return {TP: 5}

    consumer.seek_to_committed = seek_to_committed
    consumer._read_offset, consumer._committed_offset = {}, {}
    asyncio.run(SafeConsumer.perform_seek(consumer))  # type: ignore[arg-type]
    assert consumer._held == {}
    assert consumer._committed_offset == {TP: 5}


def _queue(*items: Any) -> Any:
    return SimpleNamespace(_queue=list(items))


def _event(topic: str, partition: int, offset: int) -> Any:
    tp = (topic, partition)
    return SimpleNamespace(message=SimpleNamespace(tp=tp, topic=topic, offset=offset))


def _clearing_consumer(assigned: set[Any], changelogs: frozenset[str] = frozenset()) -> Any:
    flow = FlowControlEvent()
    app = SimpleNamespace(
        flow_control=flow,
        topics=SimpleNamespace(acks_enabled_for=lambda topic: topic not in changelogs),
    )
    fake = SimpleNamespace(
        app=app,
        _delivering=None,
        _read_offset={},
        assignment=lambda: assigned,
        _is_changelog_tp=lambda tp: tp[0] in changelogs,
        log=SimpleNamespace(info=lambda *a: None),
        rewinds=[],
    )
    fake._queued_offsets = lambda queues: SafeConsumer._queued_offsets(fake, queues)  # type: ignore[arg-type]
    fake._start_rewind = lambda tp, offset: fake.rewinds.append((tp, offset))
    fake.queue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    SafeConsumer._guard_queue_clears(fake)  # type: ignore[arg-type]
    return fake


def test_queued_offsets_are_the_lowest_per_partition_including_the_one_in_hand() -> None:
    fake = _clearing_consumer(assigned={("approved", 0), ("approved", 1)})
    fake._delivering = _event("approved", 1, 3).message
    queues = [
        _queue(_event("approved", 0, 7), _event("approved", 0, 5), "not an event"),
        _queue(_event("approved", 1, 9), _event("revoked", 0, 1)),
    ]
    lowest = SafeConsumer._queued_offsets(fake, queues)  # type: ignore[arg-type]
    assert lowest == {("approved", 0): 5, ("approved", 1): 3}  # "revoked" is not assigned


def test_changelog_partitions_are_left_to_recovery() -> None:
    fake = _clearing_consumer(assigned={("completed", 0)}, changelogs=frozenset({"completed"}))
    queues = [_queue(_event("completed", 0, 4))]
    assert SafeConsumer._queued_offsets(fake, queues) == {}  # type: ignore[arg-type]


def test_resuming_the_flow_refetches_what_it_wipes_from_the_queues() -> None:
    # mode's FlowControlEvent.resume() empties every clear_on_resume queue; Faust resumes after
    # its seek to the committed offsets, so events queued in between were lost for good.
    fake = _clearing_consumer(assigned={("approved", 0)})
    fake.app.flow_control.suspend()
    fake.queue.put_nowait(_event("approved", 0, 12))
    fake.queue.put_nowait(_event("approved", 0, 13))
    fake.app.flow_control.resume()
    assert fake.queue.qsize() == 0  # the upstream behaviour being guarded
    assert fake.rewinds == [(("approved", 0), 12)]


def test_a_clear_while_suspended_leaves_the_refetch_to_the_rebalance_seek() -> None:
    fake = _clearing_consumer(assigned={("approved", 0)})
    fake.queue.put_nowait(_event("approved", 0, 12))
    fake.app.flow_control.suspend()
    fake.app.flow_control.clear()
    assert fake.queue.qsize() == 0
    assert fake.rewinds == []


def test_reports_an_event_that_holds_its_partition_once(monkeypatch: Any) -> None:
    """An event in progress at the committed offset for a minute is reported, once."""
    from streams import safe_consumer

    clock = [1000.0]
    monkeypatch.setattr(safe_consumer.time, "monotonic", lambda: clock[0])
    fake = state(committed=5, acked=[6, 7], in_progress=(5,))
    assert new_offset(fake) is None
    clock[0] += safe_consumer.STALLED_AFTER_S - 1
    assert new_offset(fake) is None
    assert fake.warnings == []
    clock[0] += 2
    new_offset(fake)
    new_offset(fake)
    assert len(fake.warnings) == 1
    assert "@5 has been in progress for 61s" in fake.warnings[0]
    assert fake.rewinds == []  # in progress is not dropped: no refetch


def test_a_topic_whose_events_wait_by_design_reports_a_stall_only_past_that_wait(
    monkeypatch: Any,
) -> None:
    """A deferred delivery is held until due (up to deliver_defer_max_s): not a stall."""
    from streams import safe_consumer

    clock = [0.0]
    monkeypatch.setattr(safe_consumer.time, "monotonic", lambda: clock[0])
    fake = state(committed=5, acked=[6], in_progress=(5,))
    SafeConsumer.expect_waits(fake, TP.topic, 300.0)  # type: ignore[arg-type]
    SafeConsumer.expect_waits(fake, TP.topic, 5.0)  # type: ignore[arg-type]  # the longest stays
    new_offset(fake)
    clock[0] += safe_consumer.STALLED_AFTER_S + 299
    new_offset(fake)
    assert fake.warnings == []
    clock[0] += 2
    new_offset(fake)
    assert len(fake.warnings) == 1
    assert "@5 has been in progress for 361s" in fake.warnings[0]


def test_a_new_head_restarts_the_stall_clock(monkeypatch: Any) -> None:
    from streams import safe_consumer

    clock = [0.0]
    monkeypatch.setattr(safe_consumer.time, "monotonic", lambda: clock[0])
    fake = state(committed=5, acked=[6], in_progress=(5,))
    new_offset(fake)
    clock[0] += safe_consumer.STALLED_AFTER_S / 2
    fake2 = state(committed=6, acked=[7], in_progress=(6,))
    fake2._head_in_progress = fake._head_in_progress
    new_offset(fake2)
    clock[0] += safe_consumer.STALLED_AFTER_S / 2 + 1
    new_offset(fake2)
    assert fake2.warnings == []  # offset 6 has been at the head for half the time only


def test_never_commits_past_an_acknowledgement_no_stream_took() -> None:
    """An offset acknowledged without any stream having taken it is fetched again."""
    fake = state(committed=10, acked=[10, 11, 12, 13])
    fake._taken[TP].discard(12)
    assert new_offset(fake) == 12
    assert fake.rewinds == [(TP, 12)]
    assert fake._acked[TP] == []  # 12 and 13 come again with the refetched copies
    assert fake.warnings
    assert "@12 was acknowledged but never taken" in fake.warnings[0]


def test_an_untaken_head_commits_nothing() -> None:
    fake = state(committed=10, acked=[10, 11])
    fake._taken[TP].discard(10)
    assert new_offset(fake) is None
    assert fake.rewinds == [(TP, 10)]


def test_taken_offsets_are_forgotten_once_committed() -> None:
    fake = state(committed=10, acked=[10, 11], in_progress=(12,))
    assert new_offset(fake) == 12
    assert fake._taken[TP] == {12}


def test_the_taken_set_records_what_streams_add() -> None:
    from streams.safe_consumer import _TakenSet

    taken: dict[Any, set[int]] = {}
    unacked = _TakenSet(taken)

    class Message:  # weakly referenced, like Faust's
        tp, offset = TP, 7

    message = Message()
    unacked.add(message)
    assert message in unacked
    assert taken == {TP: {7}}
    unacked -= {message}
    assert message not in unacked
    assert isinstance(unacked, _TakenSet)  # Faust's in-place -= keeps the same set


def test_on_a_topic_stages_report_only_handled_offsets_are_committed_past() -> None:
    """Taken and acknowledged is not enough once stages report the topic: the stage must
    have seen the event through (item 11)."""
    fake = state(committed=10, acked=[10, 11, 12])
    fake._handled[TP].discard(11)
    assert new_offset(fake) == 13  # the topic is not reported by any stage: taken suffices
    fake = state(committed=10, acked=[10, 11, 12])
    fake._handled[TP].discard(11)
    fake._handled_topics.add(TP.topic)
    assert new_offset(fake) == 11
    assert fake.rewinds == [(TP, 11)]
    assert "@11 was acknowledged but never handled" in fake.warnings[0]


def test_handled_records_the_topic_and_offset() -> None:
    fake = state(committed=0, acked=[])
    message = SimpleNamespace(topic=TP.topic, tp=TP, offset=4)
    SafeConsumer.handled(fake, message)  # type: ignore[arg-type]
    assert fake._handled_topics == {TP.topic}
    assert 4 in fake._handled[TP]


def test_the_livelock_check_skips_a_partition_whose_position_is_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiokafka asserts on a partition still resetting; that must not crash the consumer."""
    from faust.transport.drivers.aiokafka import Consumer

    def asserting(self: Any, now: float, tp: Any) -> None:
        raise AssertionError  # what aiokafka's position property does when it is unset

    monkeypatch.setattr(Consumer, "verify_event_path", asserting)
    assert SafeConsumer.verify_event_path(object.__new__(SafeConsumer), 0.0, TP) is None  # type: ignore[arg-type]

    def other(self: Any, now: float, tp: Any) -> None:
        raise RuntimeError("a different failure")

    monkeypatch.setattr(Consumer, "verify_event_path", other)
    with pytest.raises(RuntimeError):
        SafeConsumer.verify_event_path(object.__new__(SafeConsumer), 0.0, TP)  # type: ignore[arg-type]


MESSAGE = SimpleNamespace(tp="requests-0")


def _delivering_consumer(
    *, buffered: int = 0, queue_items: int = 0, other_queue_items: int = 0
) -> Any:
    """A stand-in for the fetch loop's hand-over (item 13): Faust's flow control, the stream
    queue (of 4) taking ``MESSAGE``'s partition and another stream's, and a producer buffer of
    Faust's limit 100 holding ``buffered`` records."""
    flow = FlowControlEvent(initially_suspended=False)
    queue: FlowControlQueue[Any] = FlowControlQueue(4, flow_control=flow, clear_on_resume=True)
    other: FlowControlQueue[Any] = FlowControlQueue(4, flow_control=flow, clear_on_resume=True)
    for i in range(queue_items):
        queue.put_nowait(i)
    for i in range(other_queue_items):
        other.put_nowait(i)
    conductor = SimpleNamespace(
        _tp_index={
            MESSAGE.tp: [SimpleNamespace(queue=queue)],
            "raw-0": [SimpleNamespace(queue=other)],
        }
    )
    buffer = SimpleNamespace(size=buffered, max_messages=100)
    fake = SimpleNamespace(
        app=SimpleNamespace(
            flow_control=flow, producer=SimpleNamespace(buffer=buffer), topics=conductor
        ),
        suspend_flow=asyncio.Event(),
        _commit_every=None,
        _delivering=None,
        raced=[],
        queue=queue,
    )
    fake._hand_over_is_immediate = lambda tp=None: SafeConsumer._hand_over_is_immediate(fake, tp)  # type: ignore[arg-type]
    fake._queues_taking = lambda tp: SafeConsumer._queues_taking(fake, tp)  # type: ignore[arg-type]

    async def wait_first(*coros: Any) -> None:
        fake.raced.append(coros)
        await coros[0]
        coros[1].close()

    fake.wait_first = wait_first
    return fake


def _hand_over(fake: Any) -> tuple[list[Any], bool]:
    """Deliver one message; what the callback saw, and whether it finished in one step."""
    seen: list[Any] = []

    async def callback(message: Any) -> None:
        assert fake._delivering is message  # a clear meanwhile knows the one in hand
        seen.append(message)

    step = SafeConsumer._deliver(fake, MESSAGE, callback)  # type: ignore[arg-type]
    try:
        step.send(None)
    except StopIteration:
        return seen, True
    step.close()
    return seen, False


def test_a_hand_over_that_cannot_wait_runs_at_once_without_the_race() -> None:
    fake = _delivering_consumer(buffered=100, queue_items=3, other_queue_items=4)
    seen, at_once = _hand_over(fake)
    assert seen == [MESSAGE]  # another stream's full queue is not this event's to wait for
    assert at_once  # no task, no trip round the event loop
    assert fake.raced == []
    assert fake._delivering is None


@pytest.mark.parametrize(
    "blocked",
    ["flow suspended", "rebalance signalled", "producer buffer over", "stream queue full"],
)
def test_a_hand_over_that_may_wait_races_the_flow_suspension(blocked: str) -> None:
    fake = _delivering_consumer(
        buffered=101 if blocked == "producer buffer over" else 0,
        queue_items=4 if blocked == "stream queue full" else 0,
    )
    if blocked == "flow suspended":
        fake.app.flow_control.suspend()
    if blocked == "rebalance signalled":
        fake.suspend_flow.set()
    assert not SafeConsumer._hand_over_is_immediate(fake, MESSAGE.tp)  # type: ignore[arg-type]
    seen: list[Any] = []

    async def callback(message: Any) -> None:
        seen.append(message)

    asyncio.run(SafeConsumer._deliver(fake, MESSAGE, callback))  # type: ignore[arg-type]
    assert len(fake.raced) == 1
    assert seen == [MESSAGE]
    assert fake._delivering is None


def test_a_partition_out_for_a_full_queue_shortens_the_fetch() -> None:
    """It comes back when its queue has drained to 40%: the next fetch must not wait 1 s."""
    fake = SimpleNamespace(_buffered_partitions=set())
    assert SafeConsumer._fetch_timeout(fake) == FETCH_TIMEOUT_S  # type: ignore[arg-type]
    fake._buffered_partitions.add(TP)
    assert SafeConsumer._fetch_timeout(fake) == BACKED_UP_FETCH_S < 0.1  # type: ignore[arg-type]


def test_with_no_partition_active_the_fetch_sleeps_its_timeout_not_a_second() -> None:
    active: set[Any] = set()
    fake = SimpleNamespace(
        _get_active_partitions=lambda: active,
        app=SimpleNamespace(client_only=False),
        flow_active=True,
        not_waiting_next_records=asyncio.Event(),
        sleep=asyncio.sleep,
    )

    async def wait() -> tuple[Any, Any]:
        return await SafeConsumer._wait_next_records(fake, BACKED_UP_FETCH_S)  # type: ignore[arg-type]

    started = time.monotonic()
    records, partitions = asyncio.run(wait())
    assert time.monotonic() - started < 0.5  # Faust's own sleeps 1 s here
    assert records == {}
    assert partitions is active
    assert fake.not_waiting_next_records.is_set()


def test_a_partition_the_conductor_does_not_know_checks_every_stream_queue() -> None:
    fake = _delivering_consumer(other_queue_items=4)
    assert SafeConsumer._hand_over_is_immediate(fake, MESSAGE.tp)  # type: ignore[arg-type]
    assert not SafeConsumer._hand_over_is_immediate(fake, "unknown-0")  # type: ignore[arg-type]
    assert not SafeConsumer._hand_over_is_immediate(fake)  # type: ignore[arg-type]


class _CountingMessages(list[Any]):
    def __init__(self, items: list[Any]) -> None:
        super().__init__(items)
        self.scans = 0

    def __iter__(self) -> Any:
        self.scans += 1
        return super().__iter__()


def test_a_commit_scans_the_messages_in_progress_once_for_every_partition() -> None:
    """With a backlog taken in, a scan per partition cost seconds per commit on the loop."""
    other = FaustTP("requests", 1)
    fake = state(committed=5, acked=[5, 6, 7, 9], in_progress=(8,))
    fake._acked[other] = [20, 21]
    fake._acked_index[other] = {20, 21}
    fake._committed_offset[other] = 20
    fake._taken[other] = {20, 21, 22}
    fake._handled[other] = {20, 21}
    messages = _CountingMessages(
        [*fake._unacked_messages, SimpleNamespace(tp=other, offset=22, acked=False)]
    )
    fake._unacked_messages = messages
    fake._should_commit = lambda tp, offset: SafeConsumer._should_commit(fake, tp, offset)  # type: ignore[arg-type]
    offsets = SafeConsumer._filter_committable_offsets(fake, [TP, other])  # type: ignore[arg-type]
    assert offsets == {TP: 8, other: 22}  # 8 and 22 in progress: nothing passes them
    assert messages.scans == 1
    assert fake._in_progress_index is None  # only for the one commit
