"""Which requests go to an alias's batch rung, and until when they may wait for it.

The router says how much of a request's deadline is left (``created_at`` + its own
``latency_budget_ms``: a campaign submitted with ``--deadline 24h``); a request is batched when
that exceeds the rung's ``window_s`` plus the reserve kept for the synchronous chain,
``max(margin_s, the run's latency budget)``, so a batch that fails or runs late still leaves
the chain its full budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

import httpx
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from agents.inference.batch._clients import AnthropicBatchClient, BatchClient, OpenAIBatchClient
from agents.inference.batch._collector import BatchCollector, BatchGate
from agents.inference.batch._metrics import BatchMetrics
from agents.inference.batch._tickets import BatchTickets
from agents.inference.providers.anthropic import AnthropicConfig
from agents.inference.providers.openai import OpenAIConfig
from agents.inference.routing.config import BatchRung, RoutingConfig
from schemas.records import AssetKind, GenerationRequest

__all__ = ["BatchLanes", "build_batch_clients", "reserve_s"]


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
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.clock = clock
        self._tickets: BatchTickets | None = None
        metrics = BatchMetrics.build(registry or CollectorRegistry())
        self.collectors = {
            name: BatchCollector(
                alias.batch,
                clients[alias.batch.provider],
                clock=clock,
                sleep=sleep,
                metrics=metrics,
            )
            for name, alias in config.aliases.items()
            if alias.batch is not None
        }

    @property
    def tickets(self) -> BatchTickets | None:
        """Where requests' places in batches are recorded (the generate stage sets it when
        finished generations are recorded); with it, batches outlive a stopping worker."""
        return self._tickets

    @tickets.setter
    def tickets(self, tickets: BatchTickets | None) -> None:
        self._tickets = tickets
        for collector in self.collectors.values():
            collector.durable = tickets is not None

    def guard_with(self, gate: BatchGate) -> None:
        """Send every batch API exchange through ``gate`` (the router's limit and breaker)."""
        for collector in self.collectors.values():
            collector.gate = gate

    def collector_for(
        self,
        request: GenerationRequest,
        alias: str | None,
        left_s: float,
        run_budget_s: float,
        *,
        resuming: bool = False,
    ) -> tuple[BatchCollector, float] | None:
        """The collector and the give-up time (wall clock) when the request is to be batched:
        its alias has a batch rung, it pins no provider or version, it is not an image, and
        ``left_s`` (what is left of its deadline) exceeds the rung's window plus the reserve
        (:func:`reserve_s` of ``run_budget_s``, one synchronous run's budget). A request
        ``resuming`` a batch it is already in needs no window, only time before the reserve."""
        collector = self.collectors.get(alias) if alias is not None else None
        if collector is None or request.kind is AssetKind.IMAGE:
            return None
        if request.model.provider is not None or request.model.version is not None:
            return None
        reserve = reserve_s(collector.rung, run_budget_s)
        give_up_at = self.clock() + left_s - reserve
        if not (left_s > reserve if resuming else self.window_fits(collector, give_up_at)):
            return None
        return collector, give_up_at

    def window_fits(self, collector: BatchCollector, give_up_at: float) -> bool:
        """Whether a new batch of ``collector``'s rung would end (its window) before
        ``give_up_at``: only then is a call worth batching anew."""
        return give_up_at - self.clock() > collector.rung.window_s

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
