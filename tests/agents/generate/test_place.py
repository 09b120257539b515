"""agents.generate.agent.request_place: where a request event waits in the generate pool."""

from __future__ import annotations

from types import SimpleNamespace

from agents.generate.agent import request_place
from agents.scheduling import NORMAL_RANK, PRIORITY_RANK, schedule_of
from schemas.records import Priority
from streams.codecs import Codecs
from streams.pooled_stage import Place
from streams.stage_io import peek, peek_fields
from tests.support.assets import make_request


def event(value: bytes | None) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(value=value, headers=[]))


def test_a_request_waits_by_its_priority_and_tenant_keyed_by_its_id() -> None:
    codec = Codecs.load().request
    for priority in Priority:
        request = make_request(request_id=f"r-{priority}", tenant="zeta", priority=priority)
        taken = event(codec.encode(request))
        place = request_place(peek_fields(codec, taken))
        assert place == Place(PRIORITY_RANK[priority], "zeta", f"r-{priority}")
        # The same place the decoded model gives (what the stage used before).
        decoded = peek(codec, taken)
        assert decoded is not None
        schedule = schedule_of(decoded)
        assert place == Place(schedule.rank, schedule.flow, decoded.request_id)


def test_undecodable_bytes_wait_as_normal_of_no_tenant_and_no_key() -> None:
    codec = Codecs.load().request
    for value in (None, b"", b"\xc3\x01garbage", b"not avro at all"):
        assert request_place(peek_fields(codec, event(value))) == Place(NORMAL_RANK, "", None)
    assert request_place({"request_id": 7}) == Place(NORMAL_RANK, "", None)
