"""FairQueue: priority first, then weighted fair shares across flows."""

from __future__ import annotations

import pytest

from streams.fair_queue import FairQueue


def drain(queue: FairQueue[str]) -> list[str]:
    out = []
    while len(queue):
        out.append(queue.pop())
    return out


def test_a_flow_alone_is_served_in_arrival_order() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(5):
        queue.push(f"a{i}", flow="a")
    assert drain(queue) == [f"a{i}" for i in range(5)]


def test_higher_priority_goes_first_whatever_arrived_before() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(100):
        queue.push(f"n{i}", priority=1, flow="a")
    queue.push("hero", priority=2, flow="b")
    queue.push("low", priority=0, flow="c")
    order = drain(queue)
    assert order[0] == "hero"
    assert order[-1] == "low"


def test_a_late_flow_is_not_starved_by_a_big_backlog() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(10_000):
        queue.push(f"a{i}", flow="a")
    served = [queue.pop() for _ in range(10)]  # the campaign is under way
    for i in range(100):
        queue.push(f"b{i}", flow="b")
    nxt = [queue.pop() for _ in range(200)]
    # The newcomer gets every other slot until its 100 are done.
    assert [x for x in nxt if x.startswith("b")] == [f"b{i}" for i in range(100)]
    b_positions = [i for i, x in enumerate(nxt) if x.startswith("b")]
    assert b_positions[-1] <= 200
    assert max(b_positions) < 2 * 100 + 1
    assert served == [f"a{i}" for i in range(10)]


def test_weights_set_the_shares() -> None:
    weights = {"big": 3.0, "small": 1.0}
    queue: FairQueue[str] = FairQueue(lambda flow: weights.get(flow, 1.0))
    for i in range(400):
        queue.push(f"big{i}", flow="big")
        queue.push(f"small{i}", flow="small")
    first = [queue.pop() for _ in range(400)]
    big = sum(1 for x in first if x.startswith("big"))
    assert big == pytest.approx(300, abs=2)


def test_a_bad_weight_counts_as_one() -> None:
    queue: FairQueue[str] = FairQueue(lambda flow: 0.0 if flow == "zero" else 1.0)
    for i in range(10):
        queue.push(f"z{i}", flow="zero")
        queue.push(f"o{i}", flow="one")
    first = [queue.pop() for _ in range(10)]
    assert sum(1 for x in first if x.startswith("z")) == 5


def test_remove_if_takes_out_items_and_keeps_order_of_the_rest() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(6):
        queue.push(f"x{i}", flow="a")
    removed = queue.remove_if(lambda item: item in {"x1", "x4"})
    assert sorted(removed) == ["x1", "x4"]
    assert len(queue) == 4
    assert drain(queue) == ["x0", "x2", "x3", "x5"]


def test_pop_from_empty_raises() -> None:
    with pytest.raises(IndexError):
        FairQueue[str]().pop()


def test_top_priority_is_the_priority_pop_serves_next() -> None:
    queue: FairQueue[str] = FairQueue()
    assert queue.top_priority() is None
    queue.push("n", priority=1, flow="a")
    queue.push("h", priority=2, flow="a")
    assert queue.top_priority() == 2
    assert queue.pop() == "h"
    assert queue.top_priority() == 1
    queue.pop()
    assert queue.top_priority() is None


def test_pop_last_takes_what_would_be_served_last_below_a_priority() -> None:
    queue: FairQueue[str] = FairQueue()
    for item, priority, flow in [
        ("a1", 0, "a"), ("a2", 0, "a"), ("b1", 0, "b"), ("n1", 1, "a"), ("h1", 2, "a"),
    ]:  # fmt: skip
        queue.push(item, priority=priority, flow=flow)
    assert queue.pop_last(below=0) is None
    assert queue.pop_last(below=2) == "a2"  # lowest priority first; a's second comes last
    assert queue.pop_last(below=2) in ("a1", "b1")
    assert len(queue) == 3
    assert [queue.pop() for _ in range(3)][:2] == ["h1", "n1"]
    assert len(queue) == 0
