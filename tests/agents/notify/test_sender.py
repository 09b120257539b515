"""Delivery against a real local receiver that verifies every signature."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents.egress.pinning import WebhookClient
from agents.egress.ssrf import Destination, UnsafeDestination, check_destination
from agents.notify import sender as sender_module
from agents.notify.disabled import DisabledEndpoints
from agents.notify.schedule import RetrySchedule
from agents.notify.sender import (
    StepKind,
    WebhookOutcome,
    attempt_once,
    classify,
    deliver,
    send_once,
)
from agents.notify.signing import signed_headers
from assetline.dev.broker import free_port
from schemas.webhook_event import event_payload, webhook_id
from tests.support.trickle_server import trickle_server
from tests.support.webhook_receiver import (
    SECRET,
    Answer,
    Receiver,
    make_completion,
)

ALLOW = ["127.0.0.1"]
FAST = RetrySchedule(delays=(0, 0.05, 0.1), jitter=0)


class Sleeps:
    """Records what the sender waited for; optionally runs a hook on the n-th sleep."""

    def __init__(self, on: dict[int, Any] | None = None) -> None:
        self.delays: list[float] = []
        self._on = on or {}

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        hook = self._on.get(len(self.delays))
        if hook is not None:
            hook()


def run_deliver(
    url: str, sleep: Sleeps, schedule: RetrySchedule = FAST, **kw: Any
) -> WebhookOutcome:
    done = kw.pop("done", make_completion())
    allow: Sequence[str] = kw.pop("allow", ALLOW)

    async def go() -> WebhookOutcome:
        async with WebhookClient() as client:
            return await deliver(client, url, SECRET, done, schedule, allow, sleep, **kw)

    return asyncio.run(go())


def test_delivered_first_time_with_a_verified_signature(receiver: Receiver) -> None:
    sleeps = Sleeps()
    done = make_completion()
    outcome = run_deliver(f"{receiver.url}/hook", sleeps, done=done)
    assert outcome == WebhookOutcome(
        webhook_id=webhook_id("req-1", 1), delivered=True, attempts=1, last_status=204
    )
    (seen,) = receiver.received
    assert seen.verified
    assert seen.path == "/hook"
    assert seen.body == event_payload(done)
    assert seen.payload["type"] == "asset.completed"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["webhook-id"] == outcome.webhook_id
    assert sleeps.delays == []


def test_503s_then_up_delivers_with_the_same_id_and_fresh_timestamps(
    receiver: Receiver,
) -> None:
    receiver.script(Answer(503), Answer(503))
    base = datetime.now(UTC)
    ticks = iter(range(100))
    sleeps = Sleeps()
    outcome = run_deliver(
        f"{receiver.url}/hook",
        sleeps,
        clock=lambda: base + timedelta(seconds=next(ticks)),
    )
    assert outcome.delivered
    assert outcome.attempts == 3
    seen = receiver.received
    assert [item.verified for item in seen] == [True, True, True]
    assert {item.headers["webhook-id"] for item in seen} == {webhook_id("req-1", 1)}
    assert len({item.headers["webhook-timestamp"] for item in seen}) == 3
    assert len({item.headers["webhook-signature"] for item in seen}) == 3
    assert len({item.body for item in seen}) == 1
    assert sleeps.delays == [0.05, 0.1]


def test_connection_refused_then_up_delivers() -> None:
    port = free_port()
    late = Receiver(port=port)
    sleeps = Sleeps(on={2: late.start})  # the receiver comes up before the third attempt
    try:
        outcome = run_deliver(f"http://127.0.0.1:{port}/hook", sleeps)
        assert outcome.delivered
        assert outcome.attempts == 3
        assert sleeps.delays == [0.05, 0.1]
        (seen,) = late.received
        assert seen.verified
        assert seen.headers["webhook-id"] == outcome.webhook_id
    finally:
        late.stop()


def test_receiver_down_for_good_gives_up_after_the_schedule() -> None:
    sleeps = Sleeps()
    outcome = run_deliver(f"http://127.0.0.1:{free_port()}/hook", sleeps)
    assert not outcome.delivered
    assert outcome.exhausted
    assert outcome.attempts == 3
    assert outcome.last_status is None
    assert outcome.error_code == "webhook.connect"
    assert sleeps.delays == [0.05, 0.1]


def test_receiver_failing_for_good_gives_up_with_its_last_status(receiver: Receiver) -> None:
    receiver.script(*[Answer(500)] * 10)
    outcome = run_deliver(f"{receiver.url}/hook", Sleeps())
    assert (outcome.delivered, outcome.exhausted, outcome.attempts) == (False, True, 3)
    assert outcome.last_status == 500
    assert outcome.error_code == "webhook.http_status"
    assert len(receiver.received) == 3


def test_410_disables_the_endpoint_and_it_is_not_called_again(receiver: Receiver) -> None:
    receiver.script(Answer(410))
    registry = DisabledEndpoints()
    url = f"{receiver.url}/hook"
    sleeps = Sleeps()
    outcome = run_deliver(url, sleeps, disabled=registry)
    assert outcome.disabled
    assert not outcome.delivered
    assert not outcome.exhausted
    assert outcome.attempts == 1
    assert outcome.last_status == 410
    assert url in registry
    assert sleeps.delays == []

    again = run_deliver(url, Sleeps(), disabled=registry, done=make_completion(request_id="r2"))
    assert again.disabled
    assert again.attempts == 0
    assert again.error_code == "webhook.disabled"
    assert len(receiver.received) == 1


def test_retry_after_is_honoured_when_longer(receiver: Receiver) -> None:
    receiver.script(Answer(429, {"Retry-After": "7"}), Answer(503, {"Retry-After": "0"}))
    sleeps = Sleeps()
    schedule = RetrySchedule(delays=(0, 0.05, 0.1, 60), jitter=0)
    outcome = run_deliver(f"{receiver.url}/hook", sleeps, schedule)
    assert outcome.delivered
    assert outcome.attempts == 3
    assert sleeps.delays == [7.0, 0.1]  # 7 s beats 0.05; 0 s loses to 0.1


def test_retry_after_is_capped_by_the_schedule(receiver: Receiver) -> None:
    """Issue 12: a receiver answering 429 with ``Retry-After: 330`` parked the job 330 s."""
    later = (datetime.now(UTC) + timedelta(days=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    receiver.script(Answer(429, {"Retry-After": "330"}), Answer(503, {"Retry-After": later}))
    sleeps = Sleeps()
    outcome = run_deliver(f"{receiver.url}/hook", sleeps)
    assert outcome.delivered
    assert sleeps.delays == [0.1, 0.1]  # the schedule's longest delay, not 330 s or 30 days


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.script(*[Answer(302, {"Location": "/elsewhere"})] * 5)
    outcome = run_deliver(f"{receiver.url}/hook", Sleeps())
    assert not outcome.delivered
    assert outcome.last_status == 302
    assert outcome.error_code == "webhook.redirect"
    assert {seen.path for seen in receiver.received} == {"/hook"}


def test_other_4xx_is_final_without_retry(receiver: Receiver) -> None:
    receiver.script(Answer(400))
    sleeps = Sleeps()
    outcome = run_deliver(f"{receiver.url}/hook", sleeps)
    assert (outcome.delivered, outcome.exhausted, outcome.attempts) == (False, False, 1)
    assert outcome.last_status == 400
    assert sleeps.delays == []
    assert len(receiver.received) == 1


def test_wrong_secret_is_rejected_by_the_receiver() -> None:
    strict = Receiver(secret="whsec_" + "B" * 32).start()
    try:
        outcome = run_deliver(f"{strict.url}/hook", Sleeps())
        assert outcome.last_status == 401
        assert [seen.verified for seen in strict.received] == [False]
    finally:
        strict.stop()


def test_ssrf_guard_blocks_loopback_without_allow_list(receiver: Receiver) -> None:
    outcome = run_deliver(f"{receiver.url}/hook", Sleeps(), allow=[])
    assert not outcome.delivered
    assert outcome.attempts == 0
    assert outcome.error_code == "ssrf.blocked_address"
    assert receiver.received == []


def test_ssrf_guard_runs_before_every_attempt(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.script(Answer(503), Answer(503))
    checks: list[str] = []

    async def rebinding_guard(url: str, allow: Sequence[str], resolver: Any) -> Destination:
        checks.append(url)
        if len(checks) == 2:  # the name now points inside
            raise UnsafeDestination("ssrf.blocked_address", "hooks resolves to 10.0.0.1")
        return await check_destination(url, allow, resolver)

    monkeypatch.setattr(sender_module, "check_destination", rebinding_guard)
    outcome = run_deliver(f"{receiver.url}/hook", Sleeps())
    assert len(checks) == 2
    assert not outcome.delivered
    assert outcome.error_code == "ssrf.blocked_address"
    assert outcome.attempts == 1
    assert len(receiver.received) == 1


def test_unresolvable_host_is_retried_then_given_up() -> None:
    calls: list[str] = []

    async def nothing(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        return []

    sleeps = Sleeps()
    outcome = run_deliver("https://hooks.example/x", sleeps, resolver=nothing)
    assert outcome.exhausted
    assert outcome.error_code == "ssrf.unresolvable"
    assert calls == ["hooks.example"] * 3
    assert sleeps.delays == [0.05, 0.1]


def test_send_once_times_out(receiver: Receiver) -> None:
    receiver.script(Answer(200, delay_s=2.0))
    body = event_payload(make_completion())
    headers = signed_headers(SECRET, "msg_t", datetime.now(UTC), body)

    async def go() -> Any:
        destination = await check_destination(f"{receiver.url}/hook", ALLOW)
        async with WebhookClient() as client:
            return await send_once(client, destination, body, headers, 0.2)

    result = asyncio.run(go())
    assert result.status is None
    assert result.error_code == "webhook.timeout"


def test_send_once_has_one_deadline_for_the_whole_call() -> None:
    """Issue 12: headers trickled a byte a second kept a 2 s-timeout call alive over 25 s.

    Every byte arrives well inside the per-read timeout; only a deadline on the whole call
    ends it. Without one this call would last 4 kB x 0.3 s (the outer guard fails it at 15 s).
    """
    body = event_payload(make_completion())
    headers = signed_headers(SECRET, "msg_t", datetime.now(UTC), body)

    async def go(url: str) -> Any:
        destination = await check_destination(f"{url}/hook", ALLOW)
        async with WebhookClient() as client:
            return await asyncio.wait_for(
                send_once(client, destination, body, headers, 1.0), timeout=15
            )

    with trickle_server(interval_s=0.3) as server:
        started = time.monotonic()
        result = asyncio.run(go(server.url))
        took = time.monotonic() - started
        assert server.accepted == 1
    assert result.status is None
    assert result.error_code == "webhook.timeout"
    assert took < 5, took  # 1 s deadline (plus slack for a busy machine), not per read


def test_attempt_once_bounds_a_resolver_that_never_answers() -> None:
    async def hangs(host: str, port: int) -> Sequence[str]:
        await asyncio.sleep(3600)
        return []

    async def go() -> Any:
        async with WebhookClient() as client:
            return await asyncio.wait_for(
                attempt_once(
                    client, "https://hooks.example/x", SECRET, "msg_t", b"{}", 1, FAST, ALLOW,
                    resolver=hangs, timeout_s=0.3,
                ),
                timeout=15,
            )  # fmt: skip

    step = asyncio.run(go())
    assert step.kind is StepKind.RETRY
    assert step.result.error_code == "webhook.timeout"


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (301, "retry"),
        (400, "final"),
        (401, "final"),
        (404, "final"),
        (408, "retry"),
        (410, "disabled"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (None, "retry"),
    ],
)
def test_classify(status: int | None, verdict: str) -> None:
    assert classify(status).value == verdict
