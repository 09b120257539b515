"""Waiting for an acknowledgement can be cancelled; the send it waits for is not."""

from __future__ import annotations

import asyncio

import pytest

from streams.acks import acknowledged


def test_the_result_is_the_acknowledgement() -> None:
    async def scenario() -> str:
        delivery: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(delivery.set_result, "partition 2 offset 7")
        return await acknowledged(delivery)

    assert asyncio.run(scenario()) == "partition 2 offset 7"


def test_a_cancelled_wait_leaves_the_send_to_take_the_brokers_answer() -> None:
    async def scenario() -> tuple[bool, str]:
        delivery: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waiting = asyncio.create_task(acknowledged(delivery))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        cancelled = delivery.cancelled()
        delivery.set_result("acked")  # the broker's answer: raises InvalidStateError if cancelled
        return cancelled, delivery.result()

    assert asyncio.run(scenario()) == (False, "acked")
