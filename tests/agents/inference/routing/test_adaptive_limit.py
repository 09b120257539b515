"""AdaptiveLimit: slow start, additive increase, multiplicative decrease, fair waiters."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from agents.inference.routing.adaptive_limit import REFUSAL_CUT, AdaptiveLimit, Signal


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def hold(limit: AdaptiveLimit, n: int, signal: Signal, clock: Clock, latency: float) -> None:
    """Run ``n`` calls concurrently that each take ``latency`` (fake clock) and end ``signal``."""
    release = asyncio.Event()

    async def call() -> None:
        async with limit.slot() as permit:
            await release.wait()
            permit.done(signal)

    tasks = [asyncio.ensure_future(call()) for _ in range(n)]
    for _ in range(3):
        await asyncio.sleep(0)
    clock.now += latency
    release.set()
    await asyncio.gather(*tasks)


def held_calls(limit: AdaptiveLimit, n: int) -> tuple[list[asyncio.Future[None]], asyncio.Event]:
    """``n`` calls that hold their slot until the event is set, then succeed."""
    release = asyncio.Event()

    async def call() -> None:
        async with limit.slot() as permit:
            await release.wait()
            permit.done(Signal.OK)

    return [asyncio.ensure_future(call()) for _ in range(n)], release


def test_slow_start_doubles_the_limit_every_round_trip_while_it_is_used() -> None:
    clock = Clock()
    limit = AdaptiveLimit("p", initial=4, maximum=1000, clock=clock)

    async def go() -> list[float]:
        seen = []
        for _ in range(4):
            await hold(limit, int(limit.limit), Signal.OK, clock, 2.0)
            seen.append(limit.limit)
        return seen

    seen = [4.0, *asyncio.run(go())]
    # About doubling (the threshold of "in use" rises with the limit during a round trip).
    assert all(1.75 <= b / a <= 2.0 for a, b in itertools.pairwise(seen)), seen


def test_an_unused_limit_does_not_grow() -> None:
    clock = Clock()
    limit = AdaptiveLimit("p", initial=16, clock=clock)

    async def go() -> None:
        for _ in range(50):
            await hold(limit, 2, Signal.OK, clock, 1.0)

    asyncio.run(go())
    assert limit.limit == 16


def test_timeouts_halve_the_limit_once_per_round_trip_then_recover_fast_then_additively() -> None:
    clock = Clock()
    limit = AdaptiveLimit("p", initial=64, clock=clock)

    limit.slow_start = False  # grown additively to 64: that is where the provider stops

    async def go() -> list[float]:
        await hold(limit, 64, Signal.OVERLOAD, clock, 1.0)  # a burst of timeouts: one cut
        assert limit.limit == 32
        assert not limit.slow_start
        seen = []
        for _ in range(3):
            await hold(limit, int(limit.limit), Signal.OK, clock, 1.0)
            seen.append(limit.limit)
        return seen

    seen = asyncio.run(go())
    # Back to 90% of 64 within a round trip (+1 per success), then one more per round trip.
    assert 0.9 * 64 <= seen[0] <= 0.9 * 64 + 1.5
    assert seen[1] - seen[0] == pytest.approx(1.0, abs=0.1)
    assert seen[2] - seen[1] == pytest.approx(1.0, abs=0.1)
    assert limit.decreases == 1


def test_rising_latency_cuts_the_limit() -> None:
    clock = Clock()
    limit = AdaptiveLimit("p", initial=8, maximum=8, clock=clock)

    async def go() -> None:
        for _ in range(30):
            await hold(limit, 8, Signal.OK, clock, 1.0)
        assert limit.limit == 8
        for _ in range(10):
            await hold(limit, 1, Signal.OK, clock, 10.0)

    asyncio.run(go())
    assert limit.limit < 8
    assert limit.decreases >= 1


def test_the_limit_stays_within_one_and_the_maximum() -> None:
    clock = Clock()
    limit = AdaptiveLimit("p", initial=2, maximum=5, clock=clock)

    async def go() -> None:
        for _ in range(10):
            await hold(limit, 5, Signal.OK, clock, 1.0)
        assert limit.limit == 5
        for _ in range(20):
            clock.now += 100
            await hold(limit, 1, Signal.OVERLOAD, clock, 1.0)

    asyncio.run(go())
    assert limit.limit == 1


def test_waiters_are_served_by_priority_then_fair_share() -> None:
    limit = AdaptiveLimit("p", initial=1, maximum=1)
    order: list[str] = []

    async def call(name: str, priority: int, flow: str, gate: asyncio.Event) -> None:
        async with limit.slot(priority=priority, flow=flow):
            order.append(name)
            await gate.wait()

    async def go() -> None:
        gate = asyncio.Event()
        gate.set()
        first_gate = asyncio.Event()
        first = asyncio.ensure_future(call("first", 1, "a", first_gate))
        await asyncio.sleep(0)
        others = [asyncio.ensure_future(call(f"a{i}", 1, "a", gate)) for i in range(3)]
        others.append(asyncio.ensure_future(call("b0", 1, "b", gate)))
        others.append(asyncio.ensure_future(call("hero", 2, "c", gate)))
        await asyncio.sleep(0)
        assert limit.waiting == 5
        first_gate.set()
        await asyncio.gather(first, *others)

    asyncio.run(go())
    assert order[:4] == ["first", "hero", "a0", "b0"]


def test_a_cancelled_waiter_gives_up_its_place() -> None:
    limit = AdaptiveLimit("p", initial=1, maximum=1)

    async def go() -> None:
        gate = asyncio.Event()

        async def holder() -> None:
            async with limit.slot():
                await gate.wait()

        first = asyncio.ensure_future(holder())
        await asyncio.sleep(0)
        waiting = asyncio.ensure_future(holder())
        await asyncio.sleep(0)
        assert limit.waiting == 1
        waiting.cancel()
        await asyncio.sleep(0)
        assert limit.waiting == 0
        gate.set()
        await first
        assert limit.in_flight == 0
        async with limit.slot():
            assert limit.in_flight == 1

    asyncio.run(go())


def test_an_urgent_call_takes_the_reserve_above_a_full_limit() -> None:
    """A HIGH request does not wait for a campaign's calls to end; the reserve is bounded."""
    limit = AdaptiveLimit("p", initial=20, maximum=20)

    async def go() -> list[str]:
        gate = asyncio.Event()
        got: list[str] = []

        async def call(name: str, urgent: bool) -> None:
            async with limit.slot(priority=2 if urgent else 1, urgent=urgent):
                got.append(name)
                await gate.wait()

        tasks = [asyncio.ensure_future(call(f"n{i}", False)) for i in range(25)]
        await asyncio.sleep(0)
        assert limit.in_flight == 20
        assert limit.waiting == 5
        tasks += [asyncio.ensure_future(call(f"hero{i}", True)) for i in range(3)]
        await asyncio.sleep(0)
        assert limit.reserve() == 2
        assert limit.in_flight == 22  # two heroes in the reserve at once
        assert got[-2:] == ["hero0", "hero1"]
        assert limit.waiting == 6  # the third waits, first in line
        gate.set()
        await asyncio.gather(*tasks)
        return got

    got = asyncio.run(go())
    assert got.index("hero2") == 22  # the first slot freed went to it
    assert limit.in_flight == 0


def test_the_urgent_reserve_never_passes_the_room_a_refusal_showed() -> None:
    """Above the provider's room a HIGH call is refused and waits out Retry-After; it waits
    first in line for the next slot instead."""
    limit = AdaptiveLimit("p", initial=64)

    async def go() -> None:
        held, release = held_calls(limit, 40)
        await asyncio.sleep(0)
        async with limit.slot() as refused:  # the 41st call: the provider holds 40
            refused.done(Signal.REFUSED)
        assert limit.limit == pytest.approx(REFUSAL_CUT * 40)
        assert max(2, int(limit.limit * 0.1)) == 3  # the reserve a limit of 38 would give
        assert limit.reserve() == 2  # 38 + 2: the 40 the provider held, no further
        limit.limit = 40.0  # grown additively back to the room
        assert limit.reserve() == 0
        hero_in = asyncio.Event()

        async def hero() -> None:
            async with limit.slot(priority=2, urgent=True):
                hero_in.set()

        task = asyncio.ensure_future(hero())
        await asyncio.sleep(0)
        assert not hero_in.is_set()
        assert limit.waiting == 1  # first in line, not past the room
        release.set()
        await asyncio.gather(task, *held)
        assert hero_in.is_set()

    asyncio.run(go())
    assert limit.in_flight == 0


def test_the_overload_that_ends_slow_start_gets_no_fast_recovery() -> None:
    """Doubling overshoots up to twice the provider's room: halved is about right already."""
    clock = Clock()
    limit = AdaptiveLimit("p", initial=64, clock=clock)

    async def go() -> None:
        await hold(limit, 64, Signal.OVERLOAD, clock, 1.0)
        await hold(limit, 32, Signal.OK, clock, 1.0)

    asyncio.run(go())
    assert limit.recover_to is None
    assert limit.limit == pytest.approx(33, abs=0.1)


@pytest.mark.parametrize("slow_start", [True, False])
def test_a_429_beside_many_taken_calls_cuts_to_what_was_taken_not_to_half(
    slow_start: bool,
) -> None:
    """One 429 from a 256-slot provider must not leave the worker at half of it for minutes."""
    clock = Clock()
    limit = AdaptiveLimit("p", initial=300, clock=clock)
    limit.slow_start = slow_start

    async def go() -> None:
        release_ok, release_refused = asyncio.Event(), asyncio.Event()

        async def call(event: asyncio.Event, signal: Signal) -> None:
            async with limit.slot() as permit:
                await event.wait()
                permit.done(signal)

        taken = [asyncio.ensure_future(call(release_ok, Signal.OK)) for _ in range(256)]
        await asyncio.sleep(0)
        refused = asyncio.ensure_future(call(release_refused, Signal.REFUSED))  # the 257th
        await asyncio.sleep(0)
        clock.now += 2.0
        release_refused.set()
        await refused
        assert limit.limit == pytest.approx(REFUSAL_CUT * 256)
        release_ok.set()
        await asyncio.gather(*taken)

    asyncio.run(go())
    assert not limit.slow_start
    assert limit.decreases == 1


def test_in_slow_start_urgent_calls_may_take_up_to_the_limit_again() -> None:
    """The limit is still a probe doubling every round trip: 16 heroes go beside 16 calls."""
    limit = AdaptiveLimit("p", initial=16, maximum=1000)

    async def go() -> None:
        gate = asyncio.Event()

        async def call(urgent: bool) -> None:
            async with limit.slot(priority=2 if urgent else 1, urgent=urgent):
                await gate.wait()

        tasks = [asyncio.ensure_future(call(False)) for _ in range(40)]
        await asyncio.sleep(0)
        tasks += [asyncio.ensure_future(call(True)) for _ in range(20)]
        await asyncio.sleep(0)
        assert limit.slow_start
        assert limit.reserve() == 16
        assert limit.in_flight == 32  # 16 NORMAL, 16 heroes at once
        assert limit.waiting == 24 + 4
        gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(go())


def test_the_slow_start_reserve_never_passes_the_maximum_and_ends_with_slow_start() -> None:
    clock = Clock()
    capped = AdaptiveLimit("p", initial=16, maximum=20, clock=clock)
    assert capped.reserve() == 4  # up to max_in_flight, no further
    limit = AdaptiveLimit("p", initial=40, clock=clock)
    assert limit.reserve() == 40

    async def go() -> None:
        await hold(limit, 40, Signal.OVERLOAD, clock, 1.0)

    asyncio.run(go())
    assert not limit.slow_start
    assert limit.reserve() == max(2, int(limit.limit * 0.1))


def test_a_refused_call_frees_no_slot_for_another_refusal_within_the_round_trip() -> None:
    """The limit is 17, the provider holds 16: after the first 429 (which cuts the limit once
    per round trip), a second refusal's freed slot must not go to a waiter while the provider
    still holds 16, or every waiter is refused in turn within milliseconds."""
    clock = Clock()
    limit = AdaptiveLimit("p", initial=17, clock=clock)
    limit.slow_start = False

    async def go() -> None:
        release = asyncio.Event()

        async def held() -> None:
            async with limit.slot() as permit:
                await release.wait()
                permit.done(Signal.OK)

        async def refused() -> None:
            async with limit.slot() as permit:
                permit.done(Signal.REFUSED)

        taken = [asyncio.ensure_future(held()) for _ in range(16)]
        await asyncio.sleep(0)
        clock.now += 2.0  # a round trip after any earlier cut
        await refused()  # the 17th: cut to 95% of 16
        assert limit.limit == pytest.approx(REFUSAL_CUT * 16)
        limit.limit = 17.0  # additive growth back past 16 ...
        clock.now += 0.0005  # ... and a refusal within the same round trip
        await refused()
        assert limit.limit == pytest.approx(REFUSAL_CUT * 16)  # from what the provider holds
        assert limit.decreases == 1  # one run of refusals
        waiter = asyncio.ensure_future(refused())
        await asyncio.sleep(0)
        assert not waiter.done()  # waits for a held call to finish, not for another 429
        release.set()
        await asyncio.gather(*taken, waiter)

    asyncio.run(go())


def test_a_first_wave_past_a_small_provider_costs_one_refusal_per_call_sent_past_its_room() -> None:
    """64 calls at once against a provider of 16 slots: 48 come back refused in milliseconds.
    Each refusal measures from the calls still in flight, so the limit ends at 95% of the 16
    held and no slot a refusal frees goes to a waiting call meanwhile (the storm of 735 429s
    when each refused call counted the others started before it as taken)."""
    clock = Clock()
    limit = AdaptiveLimit("p", initial=64, clock=clock)
    granted_late: list[int] = []

    async def go() -> None:
        release = asyncio.Event()
        refuse = asyncio.Event()

        async def call(i: int) -> None:
            async with limit.slot() as permit:
                if i >= 64:
                    granted_late.append(i)
                if i < 16:
                    await release.wait()
                    permit.done(Signal.OK)
                else:
                    await refuse.wait()
                    permit.done(Signal.REFUSED)

        first = [asyncio.ensure_future(call(i)) for i in range(64)]
        await asyncio.sleep(0)
        waiting = [asyncio.ensure_future(call(64 + i)) for i in range(100)]
        await asyncio.sleep(0)
        assert limit.in_flight == 64
        clock.now += 0.005
        refuse.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert limit.in_flight == 16
        assert limit.limit == pytest.approx(REFUSAL_CUT * 16)
        assert granted_late == []  # nothing more was sent while the provider was full
        assert limit.decreases == 1
        assert not limit.slow_start
        assert limit.recover_to is None  # the doubling overshot: no fast way back
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        clock.now += 2.0
        release.set()
        await asyncio.gather(*first)
        assert REFUSAL_CUT * 16 < limit.limit < REFUSAL_CUT * 16 + 1.2  # then additively

    asyncio.run(go())


def test_a_provider_refusing_everything_drops_the_limit_then_it_recovers_fast() -> None:
    """A per-minute quota spent: every call in flight is refused, so nothing is held and the
    limit goes to 1; when the quota opens again it doubles back to 90% of where it struck."""
    clock = Clock()
    limit = AdaptiveLimit("p", initial=100, clock=clock)
    limit.slow_start = False

    async def go() -> list[float]:
        await hold(limit, 100, Signal.REFUSED, clock, 0.01)
        assert limit.limit == 1
        assert limit.recover_to == pytest.approx(90)
        seen = []
        for _ in range(8):
            await hold(limit, int(limit.limit), Signal.OK, clock, 1.0)
            seen.append(limit.limit)
        return seen

    seen = asyncio.run(go())
    assert seen[:4] == [2, 4, 8, 16]  # doubling per round trip
    assert 90 <= seen[-1] < 92  # then one per round trip past 90
    assert limit.decreases == 1


def test_refusals_and_timeouts_say_different_things_to_the_limit() -> None:
    from agents.inference.providers.base import ProviderError
    from agents.inference.routing.router import load_signal

    assert load_signal(ProviderError("provider.rate_limited", "429")) is Signal.REFUSED
    assert load_signal(ProviderError("provider.unavailable", "503")) is Signal.REFUSED
    assert load_signal(ProviderError("provider.timeout", "slow")) is Signal.OVERLOAD
    assert load_signal(ProviderError("provider.connect", "refused")) is Signal.IGNORE
    assert load_signal(ProviderError("provider.bad_request", "400")) is Signal.OK


def test_in_slow_start_a_call_unrefused_for_a_while_counts_as_taken_before_it_ends() -> None:
    """A refusal comes back at once, a taken call runs for seconds: slow start grows on calls
    that were not refused within ``accepted_after_s`` instead of waiting for them to end, and
    a call counted so adds nothing more when it succeeds."""
    limit = AdaptiveLimit("p", initial=4, maximum=1000, accepted_after_s=0.4)

    async def until(grown_to: float) -> None:
        for _ in range(3000):
            if limit.limit >= grown_to:
                return
            await asyncio.sleep(0.001)
        raise AssertionError(limit.limit)

    async def go() -> None:
        tasks, release = held_calls(limit, 100)
        await asyncio.sleep(0.1)
        assert (limit.limit, limit.in_flight) == (4, 4)  # none taken yet
        await until(8)
        assert (limit.limit, limit.in_flight) == (8, 8)  # the first 4 were taken
        await until(16)
        assert limit.in_flight == 16
        release.set()
        await asyncio.gather(*tasks)

    asyncio.run(go())
    assert limit.slow_start


def test_a_call_counted_as_taken_adds_nothing_when_it_ends() -> None:
    limit = AdaptiveLimit("p", initial=4, maximum=1000, accepted_after_s=0.01)

    async def go() -> None:
        tasks, release = held_calls(limit, 4)
        await asyncio.sleep(0.05)
        assert limit.limit == 8
        release.set()
        await asyncio.gather(*tasks)

    asyncio.run(go())
    assert limit.limit == 8  # not 12: each call grew it once


def test_no_call_counts_as_taken_once_slow_start_ended() -> None:
    limit = AdaptiveLimit("p", initial=4, maximum=1000, accepted_after_s=0.01)
    limit.slow_start = False

    async def go() -> None:
        tasks, release = held_calls(limit, 10)
        await asyncio.sleep(0.05)
        assert limit.limit == 4
        assert limit.in_flight == 4
        release.set()
        await asyncio.gather(*tasks)

    asyncio.run(go())
