"""Spend ceilings per tenant and campaign: checked before every call, charged after it.

The ledger behind it is anything with ``spent``/``add`` (:class:`SpendBook`): a dict in unit
tests, a Faust table in the worker, so the arithmetic here is tested without a broker.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

from agents.inference.providers.base import Usage
from agents.inference.routing.config import Budgets, ChainEntry
from agents.inference.routing.spend import GENERATE_LANE
from schemas.records import AssetKind, GenerationRequest

#: Output tokens assumed for the pre-check when an entry sets no max_output_tokens.
ASSUMED_OUTPUT_TOKENS = 1024


class SpendBook(Protocol):
    """Spend per scope, every lane counted; ``add`` books into one lane (see spend.py)."""

    def spent(self, scope: str) -> float: ...

    def add(self, scope: str, amount: float, lane: str = GENERATE_LANE) -> None: ...


class MemorySpendBook:
    """In-process ledger, for tests and single-shot tools; ``lanes`` says who booked what."""

    def __init__(self) -> None:
        self._spent: defaultdict[str, float] = defaultdict(float)
        self.lanes: defaultdict[tuple[str, str], float] = defaultdict(float)

    def spent(self, scope: str) -> float:
        return self._spent[scope]

    def add(self, scope: str, amount: float, lane: str = GENERATE_LANE) -> None:
        self._spent[scope] += amount
        self.lanes[scope, lane] += amount


def scopes(request: GenerationRequest) -> tuple[str, str]:
    return f"tenant:{request.tenant}", f"campaign:{request.campaign_id}"


def estimate_usage(entry: ChainEntry, request: GenerationRequest, prompt: str) -> Usage:
    """An upper-bound guess of what one call will be billed, from the prompt and the limits."""
    input_tokens = entry.estimated_input_tokens
    if input_tokens is None:
        input_tokens = len(prompt) // 4 + 1
    if request.kind is AssetKind.IMAGE:
        return Usage(input_tokens=input_tokens, images=1)
    return Usage(
        input_tokens=input_tokens,
        output_tokens=entry.max_output_tokens or ASSUMED_OUTPUT_TOKENS,
    )


@dataclass(frozen=True)
class BudgetViolation:
    scope: str
    limit: float
    spent: float
    estimate: float

    @property
    def message(self) -> str:
        return (
            f"{self.scope} has spent ${self.spent:.4f} of its ${self.limit:.4f} budget; "
            f"this call could cost ${self.estimate:.4f}"
        )


class BudgetGuard:
    def __init__(self, budgets: Budgets, book: SpendBook) -> None:
        self.budgets = budgets
        self.book = book

    def check(self, request: GenerationRequest, estimate: float) -> BudgetViolation | None:
        """The first ceiling this call could break, or None. Free calls never break one."""
        if estimate <= 0:
            return None
        tenant_scope, campaign_scope = scopes(request)
        limits = (
            (tenant_scope, self.budgets.tenant_limit(request.tenant)),
            (campaign_scope, self.budgets.campaign_limit(request.campaign_id)),
        )
        for scope, limit in limits:
            if limit is None:
                continue
            spent = self.book.spent(scope)
            if spent + estimate > limit:
                return BudgetViolation(scope, limit, spent, estimate)
        return None

    def charge(self, request: GenerationRequest, amount: float, lane: str = GENERATE_LANE) -> None:
        if amount <= 0:
            return
        for scope in scopes(request):
            self.book.add(scope, amount, lane)
