"""Concurrent delivery: where each event waits (key, lane, rank) and what a slow lane holds back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from agents.deliver.agent import delivery_place
from agents.deliver.destinations import Destinations, DestinationsFileError, load_destinations
from agents.deliver.sinks.http import HttpSink
from agents.scheduling import PRIORITY_RANK
from schemas.records import Disposition, Priority, ValidatedAsset
from streams.pooled_stage import Place
from streams.stage_pool import Job, StagePool
from tests.support.assets import make_request, make_validated, passed

ROOT = Path(__file__).parents[3]
SECRETS = {"s3-acme": SecretStr("s3-secret-value"), "dam-token": SecretStr("Bearer t0k")}


def example() -> Destinations:
    return load_destinations(
        ROOT / "examples" / "destinations" / "destinations.yaml", SECRETS, Path("unused")
    )


def test_an_asset_waits_in_its_destinations_lane_keyed_by_its_request() -> None:
    request = make_request(request_id="r-7", tenant="acme", campaign_id="spring-sale")
    request = request.model_copy(update={"priority": Priority.HIGH})
    asset = make_validated([passed("schema")], request=request)
    place = delivery_place(asset, True, example(), b"r-7")
    assert place == Place(PRIORITY_RANK[Priority.HIGH], "acme", "r-7", "dam")
    other = make_validated([passed("schema")], request=make_request(tenant="globex"))
    assert delivery_place(other, True, example(), b"r-1").lane == "local"


def test_a_rejection_or_a_detour_touches_no_destination_so_it_has_no_lane() -> None:
    asset = make_validated([passed("schema")], request=make_request(request_id="r-2"))
    rejected = delivery_place(asset, False, example(), b"r-2")
    assert (rejected.key, rejected.lane) == ("r-2", None)
    detour = asset.model_copy(update={"disposition": Disposition.REVIEW})
    assert delivery_place(detour, True, example(), b"r-2") == Place(
        PRIORITY_RANK[Priority.NORMAL], "acme", "r-2", None
    )


def test_undecodable_bytes_are_keyed_by_the_message_key() -> None:
    """So they never run beside another event of their request."""
    assert delivery_place(None, True, example(), b"r-9") == Place(key="r-9")
    assert delivery_place(None, True, example(), None) == Place()


def test_a_destination_may_set_its_own_limit(tmp_path: Path) -> None:
    destinations = example()
    assert destinations.in_flight_limit("dam", 8) == 4  # max_in_flight in the file
    assert destinations.in_flight_limit("local", 8) == 8  # the setting
    assert isinstance(destinations.sinks["dam"], HttpSink)  # the limit is no sink option
    path = tmp_path / "d.yaml"
    path.write_text(
        "destinations: {a: {type: filesystem, root: x, max_in_flight: 0}}\ndefault: a\n"
    )
    with pytest.raises(DestinationsFileError, match="max_in_flight"):
        load_destinations(path, {}, tmp_path)


def test_a_stuck_destination_holds_back_only_its_own_lane_and_keys_stay_in_order() -> None:
    """Six assets for a DAM that never answers (limit 4, from the file) and six for the
    filesystem, in a pool of 8: every filesystem asset is delivered while the DAM's first four
    hang and the other two wait aside; a rejection of a DAM request waits behind its asset."""
    destinations = example()
    stuck = asyncio.Event()
    started: list[str] = []
    finished: list[str] = []

    def job(name: str, place: Place) -> Job:
        async def run() -> None:
            started.append(name)
            if place.lane == "dam":
                await stuck.wait()
            finished.append(name)

        return Job(run, priority=place.rank, flow=place.flow, key=place.key, lane=place.lane)

    async def main() -> None:
        pool = StagePool(
            "deliver",
            max_running=8,
            max_waiting=100,
            lane_limit=lambda lane: destinations.in_flight_limit(lane, 8),
        )
        async with pool.running():
            for i in range(6):
                dam = make_request(request_id=f"dam-{i}", campaign_id="spring-sale")
                asset = make_validated([passed("schema")], request=dam)
                await pool.submit(job(f"dam-{i}", delivery_place(asset, True, destinations, None)))
                fs = make_request(request_id=f"fs-{i}", tenant="globex")
                asset = make_validated([passed("schema")], request=fs)
                await pool.submit(job(f"fs-{i}", delivery_place(asset, True, destinations, None)))
            rejection = delivery_place(asset_of("dam-0"), False, destinations, None)
            await pool.submit(job("dam-0 rejected", rejection))
            for _ in range(20):
                await asyncio.sleep(0)
            assert sorted(finished) == [f"fs-{i}" for i in range(6)]
            assert sorted(n for n in started if n.startswith("dam")) == [
                f"dam-{i}" for i in range(4)
            ]
            assert pool.in_progress == 4  # the waiting DAM assets hold no running slot
            stuck.set()
            await asyncio.wait_for(pool.idle(), timeout=10)
        assert len(finished) == 13
        assert finished.index("dam-0") < finished.index("dam-0 rejected")

    asyncio.run(main())


def asset_of(request_id: str) -> ValidatedAsset:
    request = make_request(request_id=request_id, campaign_id="spring-sale")
    return make_validated([passed("schema")], request=request)
