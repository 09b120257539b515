"""StagePool: concurrency, scheduling order, per-key order, lanes, bounds, rebalances."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from streams.stage_pool import Job, StagePool


class Gate:
    """Jobs that record when they start and finish only when released."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.running = 0
        self.peak = 0
        self._release: dict[str, asyncio.Event] = {}

    def job(self, name: str, **kwargs: object) -> Job:
        event = self._release.setdefault(name, asyncio.Event())

        async def run() -> None:
            self.started.append(name)
            self.running += 1
            self.peak = max(self.peak, self.running)
            try:
                await event.wait()
            finally:
                self.running -= 1
            self.finished.append(name)

        return Job(run, **kwargs)  # type: ignore[arg-type]

    def release(self, *names: str) -> None:
        for name in names:
            self._release.setdefault(name, asyncio.Event()).set()

    def release_all(self) -> None:
        for event in self._release.values():
            event.set()


def sync(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body on a fresh loop (the suite has no async test plugin)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@sync
async def test_runs_up_to_max_running_at_once() -> None:
    gate = Gate()
    pool = StagePool("t", max_running=3, max_waiting=100)
    async with pool.running():
        for i in range(10):
            await pool.submit(gate.job(f"j{i}"))
        await settle()
        assert gate.running == 3
        assert pool.waiting == 7
        gate.release_all()
        await pool.idle()
    assert sorted(gate.finished) == sorted(f"j{i}" for i in range(10))
    assert gate.peak == 3


@sync
async def test_waiting_jobs_start_by_priority_then_fair_share() -> None:
    gate = Gate()
    pool = StagePool("t", max_running=1, max_waiting=100)
    async with pool.running():
        await pool.submit(gate.job("busy"))
        for i in range(5):
            await pool.submit(gate.job(f"a{i}", priority=1, flow="a"))
        await pool.submit(gate.job("b0", priority=1, flow="b"))
        await pool.submit(gate.job("hero", priority=2, flow="c"))
        gate.release_all()
        await pool.idle()
    assert gate.started[:4] == ["busy", "hero", "a0", "b0"]


@sync
async def test_jobs_of_one_key_run_one_at_a_time_in_order() -> None:
    gate = Gate()
    pool = StagePool("t", max_running=10, max_waiting=100)
    async with pool.running():
        await pool.submit(gate.job("k1", key="req-1"))
        await pool.submit(gate.job("k2", key="req-1"))
        await pool.submit(gate.job("other", key="req-2"))
        await settle()
        assert sorted(gate.started) == ["k1", "other"]
        gate.release("k2")  # released early: must still wait for k1
        await settle()
        assert "k2" not in gate.started
        gate.release("k1")
        await settle()
        assert gate.finished[:2] == ["k1", "k2"]
        gate.release_all()
        await pool.idle()


@sync
async def test_a_full_lane_does_not_take_the_slots_of_other_lanes() -> None:
    gate = Gate()
    limits = {"slow-dam": 2}
    pool = StagePool(
        "t", max_running=4, max_waiting=1000, lane_limit=lambda lane: limits.get(lane, 4)
    )
    async with pool.running():
        for i in range(50):
            await pool.submit(gate.job(f"slow{i}", lane="slow-dam", flow="a"))
        for i in range(3):
            await pool.submit(gate.job(f"fs{i}", lane="fs", flow="b"))
        await settle()
        assert sorted(x for x in gate.started if x.startswith("slow")) == ["slow0", "slow1"]
        assert sorted(x for x in gate.started if x.startswith("fs")) == ["fs0", "fs1"]
        gate.release("fs0", "fs1", "fs2")
        await settle()
        assert "fs2" in gate.finished
        assert len([x for x in gate.started if x.startswith("slow")]) == 2
        gate.release_all()
        await pool.idle()
    assert len(gate.finished) == 53


@sync
async def test_a_keyed_job_waits_for_its_lane_and_keeps_its_order() -> None:
    gate = Gate()
    pool = StagePool("t", max_running=4, max_waiting=100, lane_limit=lambda lane: 1)
    async with pool.running():
        await pool.submit(gate.job("x", lane="dam", key="r1"))
        await pool.submit(gate.job("y", lane="dam", key="r2"))
        await pool.submit(gate.job("y2", lane="fs", key="r2"))
        await settle()
        assert gate.started == ["x"]
        gate.release("y2")
        await settle()
        assert gate.started == ["x"]  # y2 is behind y, which waits for the dam lane
        gate.release("x")
        await settle()
        assert gate.started == ["x", "y"]
        gate.release_all()
        await pool.idle()
    assert gate.finished.index("y") < gate.finished.index("y2")


@sync
async def test_submit_waits_while_max_waiting_jobs_wait() -> None:
    gate = Gate()
    pool = StagePool("t", max_running=1, max_waiting=2)
    async with pool.running():
        for i in range(3):
            await pool.submit(gate.job(f"j{i}"))
        blocked = asyncio.ensure_future(pool.submit(gate.job("j3")))
        await settle()
        assert not blocked.done()
        gate.release("j0")
        await asyncio.wait_for(blocked, 5)
        gate.release_all()
        await pool.idle()
    assert len(gate.finished) == 4


@sync
async def test_stale_jobs_are_dropped_unstarted() -> None:
    gate = Gate()
    generation = {"now": 1}
    pool = StagePool("t", max_running=1, max_waiting=100)

    def of(gen: int) -> Callable[[], bool]:
        return lambda: generation["now"] != gen

    async with pool.running():
        await pool.submit(gate.job("old-running", stale=of(1)))
        for i in range(5):
            await pool.submit(gate.job(f"old{i}", stale=of(1)))
        await pool.submit(gate.job("keyed-old", stale=of(1), key="k"))
        generation["now"] = 2
        pool.drop_stale()  # what the agent does when it sees a new generation
        await pool.submit(gate.job("new", stale=of(2)))
        assert pool.waiting == 1  # only "new": the old ones left the queue unstarted
        gate.release_all()
        await pool.idle()
    assert gate.started == ["old-running", "new"]


@sync
async def test_a_crashing_job_does_not_stop_the_pool(caplog: pytest.LogCaptureFixture) -> None:
    done: list[str] = []

    async def boom() -> None:
        raise RuntimeError("bug")

    async def fine() -> None:
        done.append("fine")

    pool = StagePool("t", max_running=1, max_waiting=10)
    async with pool.running():
        await pool.submit(Job(boom, key="k"))
        await pool.submit(Job(fine, key="k"))
        await pool.idle()
    assert done == ["fine"]
    assert "a job crashed" in caplog.text


@sync
async def test_leaving_cancels_jobs_in_progress() -> None:
    gate = Gate()
    pool = StagePool("t", max_running=2, max_waiting=10)
    async with pool.running():
        await pool.submit(gate.job("a"))
        await pool.submit(gate.job("b"))
        await settle()
        assert gate.running == 2
    assert gate.running == 0
    assert gate.finished == []
    with pytest.raises(RuntimeError):
        await pool.submit(gate.job("late"))


@sync
async def test_two_feeders_share_the_pool_until_the_last_leaves() -> None:
    """Generate feeds one pool from two agents (.requests, .requests.urgent): the first to
    leave (a restarted agent) cancels nothing and the pool still takes jobs; the last cancels."""
    gate = Gate()
    pool = StagePool("t", max_running=2, max_waiting=10)
    first, second = pool.running(), pool.running()
    await first.__aenter__()
    await second.__aenter__()
    await pool.submit(gate.job("a"))
    await settle()
    await first.__aexit__(None, None, None)
    await pool.submit(gate.job("b"))
    await settle()
    assert sorted(gate.started) == ["a", "b"]
    assert gate.running == 2
    gate.release("a")
    await settle()
    assert gate.finished == ["a"]
    await second.__aexit__(None, None, None)
    assert gate.running == 0
    assert gate.finished == ["a"]  # b was cancelled by the last feeder leaving
    with pytest.raises(RuntimeError):
        await pool.submit(gate.job("late"))


@sync
async def test_a_feeder_entering_again_reopens_the_pool() -> None:
    gate = Gate()
    pool = StagePool("t", max_running=1, max_waiting=10)
    async with pool.running():
        pass
    async with pool.running():
        await pool.submit(gate.job("a"))
        gate.release("a")
        await pool.idle()
    assert gate.finished == ["a"]


@sync
async def test_drop_waiting_leaves_only_the_running_jobs() -> None:
    """For a rebalance: queued jobs, jobs behind a running key and jobs waiting for a full lane
    are dropped (returned); the running ones finish, and their keys and lanes are free after."""
    gate = Gate()
    pool = StagePool(
        "t", max_running=2, max_waiting=100, lane_limit=lambda lane: 1 if lane == "dam" else 2
    )
    async with pool.running():
        await pool.submit(gate.job("a1", key="k1", lane="dam"))  # runs
        await pool.submit(gate.job("a2", key="k2", lane="dam"))  # waits for the lane
        await pool.submit(gate.job("b1", key="k1"))  # behind a1's key
        await pool.submit(gate.job("c1", key="k3"))  # runs
        await pool.submit(gate.job("d1", key="k4"))  # queued: no slot
        await pool.submit(gate.job("e1", key="k2"))  # queued
        await settle()
        assert sorted(gate.started) == ["a1", "c1"]
        dropped = pool.drop_waiting()
        assert sorted(gate.started) == ["a1", "c1"]
        assert pool.waiting == 0
        assert pool.in_progress == 2
        gate.release_all()
        await pool.idle()
        assert sorted(gate.finished) == ["a1", "c1"]
        # keys and the lane are free again: a new job of k2 in the lane starts at once
        await pool.submit(gate.job("a2 again", key="k2", lane="dam"))
        await settle()
        assert gate.started[-1] == "a2 again"
        gate.release("a2 again")
        await asyncio.wait_for(pool.idle(), timeout=10)
    assert sorted(gate.finished) == ["a1", "a2 again", "c1"]
    assert len(dropped) == 4


@sync
async def test_a_job_stepping_aside_lends_its_slot_and_runs_on_after() -> None:
    from streams.stage_pool import stepping_aside

    gate = Gate()
    batch_done = asyncio.Event()
    log: list[str] = []

    async def batched() -> None:
        log.append("batched: waiting")
        async with stepping_aside():
            await batch_done.wait()
        log.append("batched: done")

    pool = StagePool("t", max_running=1, max_waiting=10)
    async with pool.running():
        await pool.submit(Job(batched, key="b"))
        await pool.submit(gate.job("sync"))
        await settle()
        assert gate.started == ["sync"]  # it got the slot the batched wait lent
        gate.release("sync")
        await settle()
        batch_done.set()
        await pool.idle()
    assert log == ["batched: waiting", "batched: done"]
    assert gate.finished == ["sync"]


@sync
async def test_stepping_aside_outside_a_pool_does_nothing() -> None:
    from streams.stage_pool import stepping_aside

    ran = []
    async with stepping_aside():
        ran.append("block")  # a pool-less caller (a test, a tool) just runs the block
    assert ran == ["block"]


@sync
async def test_a_rebalance_cancels_a_job_stepping_aside_and_returns_it() -> None:
    from streams.stage_pool import stepping_aside

    cancelled: list[str] = []

    async def batched() -> None:
        try:
            async with stepping_aside():
                await asyncio.Event().wait()  # a batch that would take a day
        except asyncio.CancelledError:
            cancelled.append("batched")
            raise

    job = Job(batched, key="b", subject="message-b")
    pool = StagePool("t", max_running=2, max_waiting=10)
    async with pool.running():
        await pool.submit(job)
        await settle()
        dropped = pool.drop_waiting()
        await settle()
        assert dropped == [job]
        assert cancelled == ["batched"]
        assert pool.in_progress == 0


@sync
async def test_jobs_parked_for_a_full_lane_leave_it_by_priority_then_fair_share() -> None:
    gate = Gate()
    pool = StagePool("t", max_running=8, max_waiting=1000, lane_limit=lambda lane: 1)
    async with pool.running():
        await pool.submit(gate.job("first", lane="fs", flow="a"))
        for i in range(50):  # a campaign parked for the same destination
            await pool.submit(gate.job(f"a{i}", lane="fs", flow="a", priority=1))
        await pool.submit(gate.job("b0", lane="fs", flow="b", priority=1))
        await pool.submit(gate.job("hero", lane="fs", flow="c", priority=2))
        await settle()
        assert gate.started == ["first"]
        gate.release_all()  # one job at a time leaves the lane: the order is the pool's
        await pool.idle()
    assert gate.started[:4] == ["first", "hero", "a0", "b0"]


@sync
async def test_urgent_jobs_take_the_reserve_above_a_full_pool() -> None:
    gate = Gate()
    pool = StagePool("t", max_running=3, max_waiting=100, urgent_rank=2, urgent_reserve=2)
    async with pool.running():
        for i in range(5):
            await pool.submit(gate.job(f"n{i}", priority=1))
        for i in range(3):
            await pool.submit(gate.job(f"hero{i}", priority=2))
        await settle()
        # the three slots stay taken; two heroes start at once beside them, the third waits
        assert gate.started == ["n0", "n1", "n2", "hero0", "hero1"]
        assert gate.running == 5
        gate.release("n0")
        await settle()
        assert gate.started[5:] == ["hero2"]  # the freed slot: the waiting hero first
        gate.release("hero0", "hero1", "hero2")
        await settle()
        assert gate.started[6:] == ["n3"]  # NORMAL jobs get regular slots only
        assert gate.running == 3
        gate.release("n1")
        await settle()
        assert gate.started[7:] == ["n4"]
        assert gate.running == 3
        gate.release_all()
        await pool.idle()
    assert gate.peak == 5


@sync
async def test_urgent_jobs_also_take_a_reserve_of_waiting_places() -> None:
    """With the waiting places full, a HIGH job's feeder must not wait for room a NORMAL
    feeder takes first each time a job ends (two feeders: .requests and .requests.urgent)."""
    gate = Gate()
    pool = StagePool("t", max_running=1, max_waiting=2, urgent_rank=2, urgent_reserve=1)
    async with pool.running():
        for i in range(3):
            await pool.submit(gate.job(f"n{i}", priority=1))  # one runs, two wait: full
        normal = asyncio.ensure_future(pool.submit(gate.job("n3", priority=1)))
        await settle()
        assert not normal.done()  # a NORMAL job waits for room
        await asyncio.wait_for(pool.submit(gate.job("hero0", priority=2)), 1)
        await settle()
        assert "hero0" in gate.started  # the running reserve takes it at once
        await asyncio.wait_for(pool.submit(gate.job("hero1", priority=2)), 1)  # waits, placed
        hero2 = asyncio.ensure_future(pool.submit(gate.job("hero2", priority=2)))
        await settle()
        assert not hero2.done()  # the waiting reserve is bounded too
        assert not normal.done()
        gate.release_all()
        await asyncio.gather(normal, hero2)
        await pool.idle()


@sync
async def test_without_an_urgent_rank_no_job_passes_max_running() -> None:
    gate = Gate()
    pool = StagePool("t", max_running=2, max_waiting=100, urgent_reserve=5)
    async with pool.running():
        await pool.submit(gate.job("n0", priority=1))
        await pool.submit(gate.job("n1", priority=1))
        await pool.submit(gate.job("hero", priority=2))
        await settle()
        assert gate.started == ["n0", "n1"]
        gate.release_all()
        await pool.idle()
    assert gate.peak == 2


class Spill:
    """A spill callback that records the jobs it took (by ``subject``), blocking while
    ``open`` is clear, failing while ``fail`` is set."""

    def __init__(self) -> None:
        self.taken: list[object] = []
        self.open = asyncio.Event()
        self.open.set()
        self.fail = False

    async def __call__(self, job: Job) -> None:
        await self.open.wait()
        if self.fail:
            raise RuntimeError("broker down")
        self.taken.append(job.subject)


def spilling_pool(spill: Spill, *, bound: int = 2, max_waiting: int = 100) -> StagePool:
    return StagePool(
        "t",
        max_running=8,
        max_waiting=max_waiting,
        lane_limit=lambda lane: 1,
        lane_max_waiting=lambda lane: bound,
        spill=spill,
    )


@sync
async def test_a_lane_at_its_parked_bound_spills_the_next_jobs() -> None:
    """Issue 16: a dead destination's jobs filled the pool's waiting room, and then the stage
    took no event for any tenant. Past ``bound`` parked, its jobs go to ``spill`` instead."""
    gate, spill = Gate(), Spill()
    pool = spilling_pool(spill, bound=2, max_waiting=4)
    async with pool.running():
        for i in range(8):  # more than max_waiting: submit must never block on them
            await asyncio.wait_for(
                pool.submit(gate.job(f"dam{i}", key=f"k{i}", lane="dam", subject=f"dam{i}")), 1
            )
        await settle()
        assert gate.started == ["dam0"]
        assert pool.lanes_parked() == {"dam": 2}
        assert pool.waiting == 2
        assert spill.taken == [f"dam{i}" for i in range(3, 8)]  # in the order chosen
        await pool.submit(gate.job("fs", key="f", lane="fs", subject="fs"))
        await settle()
        assert "fs" in gate.started  # another lane is not held back
        gate.release_all()
        await asyncio.wait_for(pool.idle(), 5)
    assert sorted(gate.finished) == ["dam0", "dam1", "dam2", "fs"]
    assert pool.lanes_parked() == {}


@sync
async def test_a_spilled_jobs_key_goes_with_it_in_order_and_is_free_after() -> None:
    """A job of the spilled job's key chosen meanwhile (another lane, or none) is spilled
    after it, never run ahead of it; once the spill is done the key is free again."""
    gate, spill = Gate(), Spill()
    pool = spilling_pool(spill, bound=1)
    async with pool.running():
        await pool.submit(gate.job("a", key="k1", lane="dam", subject="a"))  # runs
        await pool.submit(gate.job("b", key="k2", lane="dam", subject="b"))  # parked
        spill.open.clear()
        await pool.submit(gate.job("c", key="k3", lane="dam", subject="c"))  # spilling
        await settle()
        await pool.submit(gate.job("c2", key="k3", subject="c2"))  # no lane: behind c
        await pool.submit(gate.job("c3", key="k3", lane="fs", subject="c3"))
        await pool.submit(gate.job("d", key="k4", lane="fs", subject="d"))  # other key runs
        await settle()
        assert gate.started == ["a", "d"]
        assert pool.waiting == 4  # b parked, c being spilled, c2 and c3 behind c's key
        spill.open.set()
        await settle()
        assert spill.taken == ["c", "c2", "c3"]
        assert pool.waiting == 1
        await pool.submit(gate.job("c4", key="k3", lane="cdn", subject="c4"))
        await settle()
        assert gate.started == ["a", "d", "c4"]
        gate.release_all()
        await asyncio.wait_for(pool.idle(), 5)
    assert sorted(gate.finished) == ["a", "b", "c4", "d"]


@sync
async def test_spills_in_progress_count_toward_the_waiting_room() -> None:
    """A slow spill (its topic slow to acknowledge) holds events like a waiting job: the
    intake stops at ``max_waiting`` instead of starting a spill per event taken."""
    gate, spill = Gate(), Spill()
    pool = spilling_pool(spill, bound=1, max_waiting=3)
    async with pool.running():
        await pool.submit(gate.job("a", key="k1", lane="dam", subject="a"))  # runs
        await pool.submit(gate.job("b", key="k2", lane="dam", subject="b"))  # parked
        spill.open.clear()
        await pool.submit(gate.job("c", key="k3", lane="dam", subject="c"))  # spilling
        await pool.submit(gate.job("d", key="k4", lane="dam", subject="d"))  # spilling
        await settle()
        assert pool.waiting == 3
        blocked = asyncio.ensure_future(
            pool.submit(gate.job("e", key="k5", lane="dam", subject="e"))
        )
        await settle()
        assert not blocked.done()  # no third spill while two are under way
        spill.open.set()
        await asyncio.wait_for(blocked, 5)
        await settle()
        assert spill.taken == ["c", "d", "e"]
        gate.release_all()
        await asyncio.wait_for(pool.idle(), 5)


@sync
async def test_a_failed_spill_keeps_the_job_and_those_behind_its_key() -> None:
    """Nothing is lost when ``spill`` raises: the job parks beyond the bound, and its key's
    later jobs still run after it."""
    gate, spill = Gate(), Spill()
    spill.fail = True
    pool = spilling_pool(spill, bound=1)
    async with pool.running():
        await pool.submit(gate.job("a", key="k1", lane="dam", subject="a"))
        await pool.submit(gate.job("b", key="k2", lane="dam", subject="b"))
        spill.open.clear()
        await pool.submit(gate.job("c", key="k3", lane="dam", subject="c"))
        await settle()
        await pool.submit(gate.job("c2", key="k3", subject="c2"))
        await settle()
        spill.open.set()
        await settle()
        assert spill.taken == []
        assert pool.lanes_parked() == {"dam": 2}
        assert pool.waiting == 3
        for name in ("a", "b", "c"):
            assert "c2" not in gate.started
            gate.release(name)
            await settle()
        assert gate.started == ["a", "b", "c", "c2"]
        gate.release_all()
        await asyncio.wait_for(pool.idle(), 5)


@sync
async def test_drop_waiting_cancels_a_spill_and_frees_its_key() -> None:
    gate, spill = Gate(), Spill()
    pool = spilling_pool(spill, bound=1)
    async with pool.running():
        await pool.submit(gate.job("a", key="k1", lane="dam", subject="a"))
        await pool.submit(gate.job("b", key="k2", lane="dam", subject="b"))
        spill.open.clear()
        await pool.submit(gate.job("c", key="k3", lane="dam", subject="c"))
        await settle()
        await pool.submit(gate.job("c2", key="k3", subject="c2"))
        await settle()
        dropped = pool.drop_waiting()
        assert sorted(str(job.subject) for job in dropped) == ["b", "c", "c2"]
        await settle()
        spill.open.set()
        assert pool.waiting == 0
        await pool.submit(gate.job("c again", key="k3", subject="c again"))
        await settle()
        assert gate.started == ["a", "c again"]
        gate.release_all()
        await asyncio.wait_for(pool.idle(), 5)
    assert spill.taken == []


@sync
async def test_without_a_spill_a_lane_parks_without_bound() -> None:
    gate = Gate()
    pool = StagePool(
        "t", max_running=8, max_waiting=100, lane_limit=lambda lane: 1,
        lane_max_waiting=lambda lane: 1,
    )  # fmt: skip
    async with pool.running():
        for i in range(5):
            await pool.submit(gate.job(f"dam{i}", key=f"k{i}", lane="dam"))
        await settle()
        assert pool.lanes_parked() == {"dam": 4}
        gate.release_all()
        await asyncio.wait_for(pool.idle(), 5)


@sync
async def test_an_urgent_job_at_a_full_lane_takes_the_place_of_the_least_urgent() -> None:
    """A HIGH delivery must not be deferred while a campaign's stay parked: the parked job
    that would be served last gives way (spilled, with its key), the HIGH one parks first."""
    gate, spill = Gate(), Spill()
    pool = spilling_pool(spill, bound=2)
    async with pool.running():
        await pool.submit(gate.job("run", key="k0", lane="dam", priority=1, subject="run"))
        await pool.submit(gate.job("low", key="k1", lane="dam", priority=0, subject="low"))
        await pool.submit(gate.job("n1", key="k2", lane="dam", priority=1, subject="n1"))
        await pool.submit(gate.job("low2", key="k1", priority=0, subject="low2"))  # behind low
        await pool.submit(gate.job("hero", key="k3", lane="dam", priority=2, subject="hero"))
        await settle()
        assert spill.taken == ["low", "low2"]  # the least urgent, and its key's remainder
        assert pool.lanes_parked() == {"dam": 2}
        await pool.submit(gate.job("n2", key="k4", lane="dam", priority=1, subject="n2"))
        await settle()
        assert spill.taken == ["low", "low2", "n2"]  # nothing less urgent left: it goes
        gate.release("run")
        await settle()
        assert gate.started == ["run", "hero"]
        gate.release_all()
        await asyncio.wait_for(pool.idle(), 5)
    assert gate.finished == ["run", "hero", "n1"]
