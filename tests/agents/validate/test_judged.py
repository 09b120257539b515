"""The judge's verdicts are recorded: a copy of a raw event is never judged (or paid) twice."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from agents.validate.gateway import Gateway
from agents.validate.judged import JudgeRecords, judgement_key, judgement_metrics
from schemas.records import AssetKind, RawAsset, Verdict
from tests.agents.validate.test_gateway import book, inspect, raw, verdict_json
from tests.support.record_store import DictStore
from tests.support.scripted_provider import ScriptedProvider

TEXT = b"Trail shoes that grip. Terms apply."
AT_MS = 1_780_000_000_000


def judged_gateway(store: DictStore, judge: ScriptedProvider) -> tuple[Gateway, CollectorRegistry]:
    registry = CollectorRegistry()
    records = JudgeRecords(store, judgement_metrics(registry), clock=lambda: AT_MS / 1000)
    return Gateway(book(), {"judge": judge}, judgements=records), registry


#: One raw asset: its copies are byte-identical (a new one would get a new ``created_at``).
ASSET = raw(AssetKind.TEXT, TEXT, "text/plain")


def text_asset() -> RawAsset:
    return ASSET.model_copy()


def test_a_copy_gets_the_recorded_verdict_without_a_second_call() -> None:
    store = DictStore()
    judge = ScriptedProvider("judge", [verdict_json("pass", "friendly")] * 2)
    gateway, registry = judged_gateway(store, judge)
    first = inspect(gateway, text_asset(), TEXT)
    again = inspect(gateway, text_asset(), TEXT)
    assert len(judge.calls) == 1
    assert first[0] is again[0] is Verdict.PASS
    # the copy's report carries the same verdict, cost and calls as the first
    assert again[2].checks[-1] == first[2].checks[-1]
    assert again[2].cost == pytest.approx(first[2].cost) == pytest.approx(2.0)
    assert again[2].attempts == first[2].attempts
    assert store.writes == [b"r-1|1|"]
    assert registry.get_sample_value("assetline_judgements_reused_total") == 1.0


def test_a_new_gateway_on_the_same_table_reuses_it_too() -> None:
    """After a crash or a rebalance, the partition's next owner recovers the table."""
    store = DictStore()
    first_judge = ScriptedProvider("judge", [verdict_json("fail", "too pushy")])
    inspect(judged_gateway(store, first_judge)[0], text_asset(), TEXT)
    second_judge = ScriptedProvider("judge", [verdict_json("pass")])
    verdict, failed, _ = inspect(judged_gateway(store, second_judge)[0], text_asset(), TEXT)
    assert second_judge.calls == []
    assert (verdict, failed) == (Verdict.FAIL, ["judge.verdict"])


def test_a_changed_rubric_or_a_new_attempt_is_judged_anew() -> None:
    store = DictStore()
    judge = ScriptedProvider("judge", [verdict_json("pass")] * 3)
    gateway, _ = judged_gateway(store, judge)
    inspect(gateway, text_asset(), TEXT)
    stricter = book({**book_profile(), "judge": {**book_profile()["judge"], "rubric": "Strict?"}})
    other = Gateway(stricter, {"judge": judge}, judgements=gateway.judgements)
    inspect(other, text_asset(), TEXT)
    second = text_asset()
    second = second.model_copy(update={"request": second.request.model_copy(update={"attempt": 2})})
    inspect(gateway, second, TEXT)
    assert len(judge.calls) == 3
    assert set(store.data) == {b"r-1|1|", b"r-1|2|"}


def test_a_different_asset_under_the_same_request_and_attempt_is_judged() -> None:
    """A replay that regenerated the asset: its digest differs, so its record is not used."""
    store = DictStore()
    judge = ScriptedProvider("judge", [verdict_json("pass")] * 2)
    gateway, registry = judged_gateway(store, judge)
    inspect(gateway, text_asset(), TEXT)
    other = raw(AssetKind.TEXT, b"Other shoes. Terms apply.", "text/plain")
    inspect(gateway, other, b"Other shoes. Terms apply.")
    assert len(judge.calls) == 2
    sample = registry.get_sample_value(
        "assetline_judgement_records_ignored_total", {"reason": "different_request"}
    )
    assert sample == 1.0


def test_a_shadow_verdict_never_takes_its_primary_s_record() -> None:
    primary = text_asset()
    shadow = primary.model_copy(update={"rung": "shadow"})
    assert judgement_key(primary) != judgement_key(shadow)


def test_a_refused_record_still_gives_the_verdict_and_is_counted() -> None:
    store = DictStore(refuse=True)
    judge = ScriptedProvider("judge", [verdict_json("pass")])
    gateway, registry = judged_gateway(store, judge)
    verdict, _, _ = inspect(gateway, text_asset(), TEXT)
    assert verdict is Verdict.PASS
    assert registry.get_sample_value("assetline_judgement_records_failed_total") == 1.0


def test_copies_in_flight_together_share_one_call() -> None:
    """A refetch can hand the pool a copy while the first judge call is still under way."""
    store = DictStore()
    judge = ScriptedProvider("judge", [verdict_json("pass")] * 2)
    gateway, _ = judged_gateway(store, judge)
    policy = gateway.policy_for(text_asset())
    assert not isinstance(policy, str)

    async def both() -> list[Verdict]:
        done = await asyncio.gather(
            gateway.inspect(text_asset(), TEXT, policy),  # type: ignore[arg-type]
            gateway.inspect(text_asset(), TEXT, policy),  # type: ignore[arg-type]
        )
        return [validated.report.verdict for validated in done]

    assert asyncio.run(both()) == [Verdict.PASS, Verdict.PASS]
    assert len(judge.calls) == 1


def book_profile() -> dict[str, object]:
    from tests.agents.validate.test_gateway import PROFILE

    return dict(PROFILE)
