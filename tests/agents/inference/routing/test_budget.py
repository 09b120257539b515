"""Budget arithmetic: pre-check against every ceiling, charge both scopes."""

from __future__ import annotations

import pytest

from agents.inference.routing.budget import (
    ASSUMED_OUTPUT_TOKENS,
    BudgetGuard,
    MemorySpendBook,
    estimate_usage,
)
from agents.inference.routing.config import Budgets, ChainEntry
from schemas.records import AssetKind, GenerationRequest


def request(kind: AssetKind = AssetKind.TEXT, tenant: str = "acme") -> GenerationRequest:
    return GenerationRequest(
        request_id="r",
        idempotency_key="k",
        tenant=tenant,
        campaign_id="spring",
        kind=kind,
        prompt_template="p",
    )


def test_a_call_that_fits_passes_and_one_that_would_not_is_stopped() -> None:
    guard = BudgetGuard(Budgets(campaigns={"spring": 1.0}), MemorySpendBook())
    assert guard.check(request(), 0.6) is None
    guard.charge(request(), 0.6)
    violation = guard.check(request(), 0.5)
    assert violation is not None
    assert violation.scope == "campaign:spring"
    assert violation.spent == pytest.approx(0.6)
    assert "0.6000 of its $1.0000" in violation.message
    assert guard.check(request(), 0.4) is None


def test_tenant_ceiling_applies_across_campaigns() -> None:
    book = MemorySpendBook()
    guard = BudgetGuard(Budgets(tenants={"acme": 2.0}), book)
    guard.charge(request(), 1.5)
    assert book.spent("tenant:acme") == pytest.approx(1.5)
    assert book.spent("campaign:spring") == pytest.approx(1.5)
    violation = guard.check(request(), 1.0)
    assert violation is not None
    assert violation.scope == "tenant:acme"
    assert guard.check(request(tenant="other"), 1.0) is None


def test_free_calls_never_break_a_ceiling_even_when_it_is_spent() -> None:
    guard = BudgetGuard(Budgets(campaigns={"spring": 0.0}), MemorySpendBook())
    assert guard.check(request(), 0.0) is None
    assert guard.check(request(), 0.0001) is not None


def test_estimate_uses_limits_for_text_and_one_image_for_images() -> None:
    entry = ChainEntry(provider="p", model="m", max_output_tokens=300)
    text = estimate_usage(entry, request(), "x" * 400)
    assert (text.input_tokens, text.output_tokens, text.images) == (101, 300, 0)
    image = estimate_usage(entry, request(AssetKind.IMAGE), "draw")
    assert (image.output_tokens, image.images) == (0, 1)
    unbounded = ChainEntry(provider="p", model="m", estimated_input_tokens=7)
    estimate = estimate_usage(unbounded, request(), "ignored")
    assert (estimate.input_tokens, estimate.output_tokens) == (7, ASSUMED_OUTPUT_TOKENS)


def test_unnamed_tenants_and_campaigns_get_the_default_ceilings() -> None:
    """Naming a campaign (or tenant) nobody budgeted no longer escapes every ceiling."""
    budgets = Budgets(
        tenants={"acme": 10.0},
        campaigns={"spring": 5.0},
        default_tenant=2.0,
        default_campaign=1.0,
    )
    guard = BudgetGuard(budgets, MemorySpendBook())
    made_up = request().model_copy(update={"campaign_id": "made-up-1"})
    violation = guard.check(made_up, 1.5)
    assert violation is not None
    assert violation.scope == "campaign:made-up-1"
    assert violation.limit == 1.0
    stranger = request(tenant="stranger").model_copy(update={"campaign_id": "spring"})
    violation = guard.check(stranger, 3.0)
    assert violation is not None
    assert (violation.scope, violation.limit) == ("tenant:stranger", 2.0)
    # Each unnamed scope has its own ceiling; named ones keep theirs.
    guard.charge(made_up, 0.9)
    other = request().model_copy(update={"campaign_id": "made-up-2"})
    assert guard.check(other, 0.9) is None
    assert guard.check(request(), 4.0) is None


def test_without_defaults_unnamed_scopes_stay_unlimited() -> None:
    guard = BudgetGuard(Budgets(campaigns={"spring": 1.0}), MemorySpendBook())
    other = request(tenant="x").model_copy(update={"campaign_id": "autumn"})
    assert guard.check(other, 1_000_000.0) is None


@pytest.mark.parametrize(
    "budgets",
    [
        {"tenants": {"acme": -1.0}},
        {"campaigns": {"spring": -0.01}},
        {"default_tenant": -5},
        {"default_campaign": float("nan")},
        {"campaigns": {"spring": float("inf")}},
    ],
)
def test_negative_or_non_finite_budgets_are_refused(budgets: dict[str, object]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Budgets.model_validate(budgets)


def test_routing_file_with_a_negative_budget_fails_to_load() -> None:
    from agents.inference.routing.config import RoutingFileError, parse_routing

    text = (
        "providers: {offline: {type: offline}}\n"
        "aliases: {d: {chain: [{provider: offline, model: offline}]}}\n"
        "default_alias: d\n"
        "budgets: {tenants: {acme: -3}, default_campaign: 2.5}\n"
    )
    with pytest.raises(RoutingFileError, match="greater than or equal to 0"):
        parse_routing(text, ".yaml")
    config = parse_routing(text.replace("-3", "3"), ".yaml")
    assert config.budgets.default_campaign == 2.5
