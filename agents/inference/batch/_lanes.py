"""Which requests go to an alias's batch rung, and until when they may wait for it.

A request's deadline is ``created_at`` + its latency budget (wall clock). On an alias with a
batch rung, the request's own ``latency_budget_ms`` may exceed the alias's (up to the rung's
``max_deadline_s``): that is how a producer says "tomorrow is fine". The alias's budget stays
what one synchronous pass needs, and is kept in reserve (or ``margin_s``, if larger), so a
batch that fails or runs late still leaves the synchronous chain its full budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

import httpx
from pydantic import SecretStr

from agents.inference.batch._clients import AnthropicBatchClient, BatchClient, OpenAIBatchClient
from agents.inference.batch._collector import BatchCollector
from agents.inference.providers.anthropic import AnthropicConfig
from agents.inference.providers.base import ProviderCall
from agents.inference.providers.openai import OpenAIConfig
from agents.inference.routing.config import BatchRung, RoutingConfig
from schemas.records import AssetKind, GenerationRequest

__all__ = ["BatchLanes", "build_batch_clients", "deadline_budget_s", "remaining_s", "reserve_s"]


def deadline_budget_s(request: GenerationRequest, rung: BatchRung, sync_budget_s: float) -> float:
    """The request's latency budget in seconds: its own, up to ``rung.max_deadline_s``;
    unset (or not positive) means the alias's synchronous budget."""
    requested = request.latency_budget_ms
    if requested is None or requested <= 0:
        return sync_budget_s
    return min(requested / 1000.0, rung.max_deadline_s)


def remaining_s(request: GenerationRequest, budget_s: float, now: float) -> float:
    """Seconds left until ``created_at`` + ``budget_s`` at wall-clock ``now``; a
    ``created_at`` in the future counts as now. (The router's deadline helper, kept small
    so the two can merge.)"""
    return budget_s - max(0.0, now - request.created_at.timestamp())


def reserve_s(rung: BatchRung, sync_budget_s: float) -> float:
    """Time kept for the synchronous fallback at the end of a batched request's deadline."""
    return max(rung.margin_s, sync_budget_s)


class BatchLanes:
    """One :class:`BatchCollector` per alias with a batch rung."""

    def __init__(
        self,
        config: RoutingConfig,
        clients: Mapping[str, BatchClient],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.clock = clock
        self.collectors = {
            name: BatchCollector(
                alias.batch, clients[alias.batch.provider], clock=clock, sleep=sleep
            )
            for name, alias in config.aliases.items()
            if alias.batch is not None
        }

    def collector_for(
        self, request: GenerationRequest, alias: str | None, sync_budget_s: float
    ) -> tuple[BatchCollector, float] | None:
        """The collector and the give-up time (wall clock) when the request is to be batched:
        its alias has a batch rung, it pins no provider or version, it is not an image, and
        what is left of its deadline exceeds the rung's window plus the reserve."""
        collector = self.collectors.get(alias) if alias is not None else None
        if collector is None or request.kind is AssetKind.IMAGE:
            return None
        if request.model.provider is not None or request.model.version is not None:
            return None
        rung = collector.rung
        now = self.clock()
        left = remaining_s(request, deadline_budget_s(request, rung, sync_budget_s), now)
        reserve = reserve_s(rung, sync_budget_s)
        if left <= rung.window_s + reserve:
            return None
        return collector, now + left - reserve

    def covers(self, request: GenerationRequest, alias: str | None) -> bool:
        """The request's alias has a batch rung and the request pins nothing: its deadline
        is then its own (see :func:`deadline_budget_s`), batched or not."""
        if alias is None or alias not in self.collectors:
            return False
        return request.model.provider is None and request.model.version is None

    def remaining_for(self, request: GenerationRequest, alias: str, sync_budget_s: float) -> float:
        """Seconds left of the request's own deadline, now."""
        rung = self.collectors[alias].rung
        budget = deadline_budget_s(request, rung, sync_budget_s)
        return remaining_s(request, budget, self.clock())

    def provider_call(
        self, collector: BatchCollector, request: GenerationRequest, prompt: str
    ) -> ProviderCall:
        rung = collector.rung
        return ProviderCall(
            request=request,
            prompt=prompt,
            model=rung.version or rung.model,
            timeout_s=rung.timeout_s,
            max_output_tokens=rung.max_output_tokens,
            params=rung.params,
        )

    async def aclose(self) -> None:
        for collector in self.collectors.values():
            await collector.aclose()
            await collector.client.aclose()


def build_batch_clients(
    config: RoutingConfig,
    api_keys: Mapping[str, SecretStr],
    client: httpx.AsyncClient | None = None,
) -> dict[str, BatchClient]:
    """One batch client per provider some alias's batch rung names (keys as for adapters);
    each owns its pool unless ``client`` is given (then closing it is the caller's)."""
    clients: dict[str, BatchClient] = {}
    for alias in config.aliases.values():
        rung = alias.batch
        if rung is None or rung.provider in clients:
            continue
        spec = config.providers[rung.provider]
        secret = api_keys.get(spec.api_key) if spec.api_key is not None else None
        key = secret.get_secret_value() if secret is not None else ""
        adapter = spec.adapter
        if isinstance(adapter, OpenAIConfig):
            clients[rung.provider] = OpenAIBatchClient(
                rung.provider, adapter, key, client, timeout_s=rung.timeout_s
            )
        elif isinstance(adapter, AnthropicConfig):
            clients[rung.provider] = AnthropicBatchClient(
                rung.provider, adapter, key, client, timeout_s=rung.timeout_s
            )
    return clients
