"""Channels against real local receivers speaking Slack, PagerDuty v2 and Standard Webhooks."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from agents.alerts.channels import Channel, ChannelsFile, parse_channels, resolve_channels
from agents.alerts.deliver import Sent, send_notice, slack_body
from agents.alerts.grouping import Action, Cause, Notice, Severity
from agents.alerts.router import AlertRouter
from agents.egress.pinning import WebhookClient
from schemas.records import Alert, AlertKind
from tests.support.alert_receivers import HOOK_SECRET, ROUTING_KEY, AlertReceivers

LOCAL = ("127.0.0.1",)


@pytest.fixture
def receivers() -> Iterator[AlertReceivers]:
    server = AlertReceivers().start()
    try:
        yield server
    finally:
        server.stop()


def _config(url: str, *, hook_min: str = "info", hook_secret: str = "hook") -> ChannelsFile:
    return parse_channels(
        f"""
interval_s: 60
quiet_s: 600
retry_delays_s: [0, 0.01, 0.01]
timeout_s: 2
allow: [127.0.0.1]
channels:
  - {{name: team, type: slack, url_secret: slack-url, min_severity: warning}}
  - {{name: oncall, type: pagerduty, url: "{url}/v2/enqueue", routing_key: pd, min_severity: error}}
  - {{name: ops, type: webhook, url: "{url}/hook", secret: {hook_secret}, min_severity: {hook_min}}}
""",
        ".yaml",
        "alerts.yaml",
    )


def _channels(url: str, config: ChannelsFile, hook: str = HOOK_SECRET) -> list[Channel]:
    keys = {
        "slack-url": SecretStr(f"{url}/slack"),
        "pd": SecretStr(ROUTING_KEY),
        "hook": SecretStr(hook),
    }
    return resolve_channels(config, keys)


def _notice(
    action: Action = Action.TRIGGER, summary: str = "primary failed", count: int = 3
) -> Notice:
    cause = Cause("ALL_PROVIDERS_FAILED", "copy")
    return Notice(cause, action, Severity.ERROR, count, summary, 1_780_000_000.0, 1_780_000_060.0)


def _send(channel: Channel, notice: Notice, config: ChannelsFile) -> Sent:
    async def go() -> Sent:
        async with WebhookClient() as client:
            return await send_notice(
                client, channel, notice, allow=config.allow, delays_s=config.retry_delays_s,
                timeout_s=config.timeout_s,
            )  # fmt: skip

    return asyncio.run(go())


def test_each_channel_shape_is_accepted(receivers: AlertReceivers) -> None:
    config = _config(receivers.url)
    for channel in _channels(receivers.url, config):
        sent = _send(channel, _notice(), config)
        assert sent.delivered
        assert sent.attempts == 1
    (slack,) = receivers.calls("slack")
    (pd,) = receivers.calls("pagerduty")
    (hook,) = receivers.calls("hook")
    assert slack.valid
    assert pd.valid
    assert hook.valid
    assert "ALL_PROVIDERS_FAILED for copy: 3 alerts" in slack.body["text"]
    assert pd.body["payload"]["severity"] == "error"
    assert pd.status == 202
    assert pd.body["dedup_key"] == "assetline/ALL_PROVIDERS_FAILED/copy"
    assert hook.body["count"] == 3
    assert hook.body["type"] == "assetline.alert.trigger"
    assert ROUTING_KEY not in slack.body["text"]


def test_pagerduty_resolve_uses_the_trigger_dedup_key(receivers: AlertReceivers) -> None:
    config = _config(receivers.url)
    oncall = _channels(receivers.url, config)[1]
    _send(oncall, _notice(), config)
    _send(oncall, _notice(Action.RESOLVE, count=0), config)
    trigger, resolve = receivers.calls("pagerduty")
    assert (trigger.body["event_action"], resolve.body["event_action"]) == ("trigger", "resolve")
    assert resolve.body["dedup_key"] == trigger.body["dedup_key"]
    assert resolve.valid
    assert resolve.status == 202


def test_slack_text_cannot_mention_everyone() -> None:
    body = slack_body(_notice(summary="<!channel> <https://evil|click> & more"))
    assert "<!channel>" not in body["text"]
    assert "&lt;!channel&gt;" in body["text"]


def test_retries_are_bounded_and_4xx_is_final(receivers: AlertReceivers) -> None:
    config = _config(receivers.url)
    slack, _, _ = _channels(receivers.url, config)
    receivers.fail_next("slack", 500, 503)
    sent = _send(slack, _notice(), config)
    assert sent.delivered
    assert sent.attempts == 3
    receivers.fail_next("slack", 500, 500, 500, 500)
    sent = _send(slack, _notice(), config)
    assert not sent.delivered
    assert sent.attempts == 3
    # a wrongly signed hook is refused (401) and not asked again
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    hook = _channels(receivers.url, config, hook=other)[2]
    before = len(receivers.calls("hook"))
    sent = _send(hook, _notice(), config)
    assert not sent.delivered
    assert sent.status == 401
    assert len(receivers.calls("hook")) == before + 1


def test_private_address_needs_the_allow_list(receivers: AlertReceivers) -> None:
    config = _config(receivers.url).model_copy(update={"allow": ()})
    for channel in _channels(receivers.url, config):
        sent = _send(channel, _notice(), config)
        assert not sent.delivered
        assert sent.error_code == "ssrf.blocked_address"
    assert receivers.calls() == []


def test_a_silent_endpoint_costs_bounded_time() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config = _config(url).model_copy(update={"timeout_s": 0.3, "retry_delays_s": (0.0, 0.0)})
        channel = _channels(url, config)[1]
        started = time.monotonic()
        sent = _send(channel, _notice(), config)
        elapsed = time.monotonic() - started
    assert not sent.delivered
    assert sent.attempts == 2
    assert sent.error_code == "webhook.timeout"
    assert elapsed < 1.5


def test_router_outage_of_1000_alerts_is_few_messages_per_channel(
    receivers: AlertReceivers,
) -> None:
    config = _config(receivers.url, hook_min="critical")
    now = [1_780_000_000.0]

    def alerts() -> Iterator[Alert]:
        yield Alert(alert_id="o", kind=AlertKind.BREAKER_OPENED, message="breaker opened",
                    provider="primary")  # fmt: skip
        for i in range(1000):
            yield Alert(alert_id=f"f{i}", kind=AlertKind.ALL_PROVIDERS_FAILED, alias="copy",
                        provider="primary", message=f"all providers failed #{i}")  # fmt: skip
        yield Alert(alert_id="c", kind=AlertKind.BREAKER_OPENED, message="breaker closed",
                    provider="primary", details={"state": "closed"})  # fmt: skip

    async def go() -> AlertRouter:
        async with WebhookClient() as client:
            router = AlertRouter(
                _channels(receivers.url, config), config, client, clock=lambda: now[0]
            )
            for alert in alerts():
                await router.add(alert)
                now[0] += 0.15
            now[0] += config.interval_s  # the last interval's count goes out
            await router.tick()
            now[0] += config.quiet_s  # no failure since: the alias has recovered
            await router.tick()
            return router

    router = asyncio.run(go())
    counts = {name: len(receivers.calls(name)) for name in ("slack", "pagerduty", "hook")}
    assert all(c.valid and c.status < 300 for c in receivers.calls())
    # breaker: opened + closed; failures over 150 s: the first at once, a count at 60 s and
    # 120 s, the rest after the last interval, then its quiet resolve. The hook (critical
    # only) hears only the breaker.
    assert counts == {"slack": 7, "pagerduty": 7, "hook": 2}, counts
    assert dict(router.sent) == {"team": 7, "oncall": 7, "ops": 2}
    triggers = [c.body for c in receivers.calls("pagerduty") if "payload" in c.body]
    failed = [b for b in triggers if b["dedup_key"].endswith("ALL_PROVIDERS_FAILED/copy")]
    assert sum(b["payload"]["custom_details"]["count"] for b in failed) == 1000
    actions = [c.body["event_action"] for c in receivers.calls("pagerduty")]
    assert actions.count("resolve") == 2
    assert [c.body["action"] for c in receivers.calls("hook")] == ["trigger", "resolve"]
