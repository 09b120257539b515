"""The chaos suite's quick profile (``python -m bench.chaos --quick``) as CI tests.

Each scenario runs on a real broker with real worker processes, the slow local provider (1-3 s
per call, 10% HTTP 500), a webhook receiver that fails its first three calls (the third with a
``Retry-After`` longer than the notify consumers' 3 s max poll interval) and 5% poison on
``.requests``: three workers with one ``kill -9``'d every 4 s (twice, restarted), a worker
joining and one leaving mid-burst (the rebalance that lost requests before SafeConsumer), and
the broker stopped and started again mid-burst (a broker of this module's own: the session's
broker is shared).

Asserted, because main guarantees them today: every request has exactly one completion of
its attempt generation (0 lost, 0 doubled), every poison message is on ``.deadletter`` with
an error code and reason, every webhook id queued on ``.webhooks`` was answered 2xx by the
receiver, and no worker exited on its own.

Measured and printed, not asserted: *paid twice* (provider calls made after a successful
call for the same request had been answered) waits for issue 14 part 3 to cover every exit
(a worker leaving with SIGTERM mid-burst has been seen repeating finished calls, and a call
answered in the milliseconds before a ``kill -9``, before its record is acknowledged, is
repeated by design); recovery seconds are a performance number and belong to the bench table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from assetline.dev.broker import LocalBroker, free_ports
from tests.support.chaos import QUICK, Env, Result, run_scenario, table
from tests.support.provider_server import ProviderServer, provider_server
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ProviderServer, Receiver]]:
    receiver = Receiver().start()
    try:
        with provider_server() as provider:
            yield provider, receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker only the outage scenario uses, so stopping it disturbs no other test."""
    port, controller_port = free_ports(2)
    broker = LocalBroker(
        tmp_path_factory.mktemp("chaos-kafka"), port=port, controller_port=controller_port
    )
    broker.up(timeout=120)
    try:
        yield broker
    finally:
        broker.kill()  # its data is thrown away: a clean shutdown would only take longer


def _run(env: Env, scenario: str) -> Result:
    result = asyncio.run(run_scenario(env, scenario))
    print("\n" + table([result]))
    for note in result.notes:
        print(f"  {note}")
    return result


def _assert_guaranteed(result: Result) -> None:
    notes = "\n".join(result.notes)
    assert result.requests == QUICK.n, notes
    assert result.lost == 0, notes
    assert result.doubled == 0, notes
    assert result.poison > 0
    assert result.dead_lettered == result.poison, notes
    assert result.hooks_missing == 0, notes
    assert result.self_exits == 0, notes
    assert result.provider_calls >= result.requests  # the provider really was in the loop


@pytest.mark.parametrize("scenario", ["kill", "rebalance"])
def test_kills_and_rebalances_lose_nothing_and_double_nothing(
    scenario: str,
    kafka_bootstrap: str,
    servers: tuple[ProviderServer, Receiver],
    tmp_path: Path,
) -> None:
    provider, receiver = servers
    env = Env(kafka_bootstrap, tmp_path, QUICK, provider, receiver, log=print)
    result = _run(env, scenario)
    _assert_guaranteed(result)
    if scenario == "kill":
        assert result.kills == QUICK.rounds


def test_a_broker_outage_mid_burst_loses_nothing_and_doubles_nothing(
    own_broker: LocalBroker, servers: tuple[ProviderServer, Receiver], tmp_path: Path
) -> None:
    provider, receiver = servers
    env = Env(own_broker.bootstrap, tmp_path, QUICK, provider, receiver, own_broker, log=print)
    result = _run(env, "broker")
    _assert_guaranteed(result)
    assert any(note.startswith("broker: stop took") for note in result.notes)
