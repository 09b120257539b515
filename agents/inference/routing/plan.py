"""Which chain of pinned models serves a request: a pure lookup in the routing config."""

from __future__ import annotations

from dataclasses import dataclass

from agents.inference.routing.config import (
    DEFAULT_LATENCY_BUDGET_MS,
    ChainEntry,
    Fallback,
    OfflineConfig,
    RoutingConfig,
)
from agents.inference.routing.versions import with_canary
from schemas.errors import AssetlineError
from schemas.records import GenerationRequest


class RoutingError(AssetlineError):
    """The request names something the routing config does not have; final for the request."""

    code = "routing.error"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Plan:
    alias: str | None
    chain: tuple[ChainEntry, ...]
    latency_budget_ms: int
    fallback: Fallback | None


def latency_budget(requested: int | None, ceiling: int) -> int:
    """The request's ``latency_budget_ms`` may only lower the alias's, never raise it.

    Unset, zero or negative means the alias's own budget. Without the cap one request could
    hold a worker slot (and its provider connections) for up to 2**31 ms, about 24.8 days.
    """
    if requested is None or requested <= 0:
        return ceiling
    return min(requested, ceiling)


def plan_for(request: GenerationRequest, config: RoutingConfig) -> Plan:
    """Alias -> its chain; provider (+ version) -> that one pinned model; neither -> default.

    Neither means the routing file's default alias for the request's kind
    (``default_aliases``), else ``default_alias``. A pinned paid model must appear in some
    alias's chain, because that is where its price, timeout and retries are configured; serving
    it unpriced would make budgets meaningless.
    """
    spec = request.model
    budget = request.latency_budget_ms
    if spec.alias is not None or spec.provider is None:
        name = spec.alias if spec.alias is not None else config.default_alias_for(request.kind)
        alias = config.aliases.get(name)
        if alias is None:
            known = ", ".join(sorted(config.aliases))
            raise RoutingError(
                "routing.unknown_alias", f"unknown model alias {name!r} (configured: {known})"
            )
        chain = alias.chain
        if spec.provider is not None or spec.version is not None:
            chain = [e for e in chain if _matches(e, spec.provider, spec.version)]
            if not chain:
                raise RoutingError(
                    "routing.unknown_model",
                    f"alias {name!r} has no model {_describe(spec.provider, spec.version)}",
                )
        served = with_canary(name, alias, request, tuple(chain))  # versions.py: canary first?
        return Plan(name, served, latency_budget(budget, alias.latency_budget_ms), alias.fallback)
    provider = spec.provider
    if provider not in config.providers:
        known = ", ".join(sorted(config.providers))
        raise RoutingError(
            "routing.unknown_provider", f"unknown provider {provider!r} (configured: {known})"
        )
    for alias_name, alias in config.aliases.items():
        for entry in alias.chain:
            if _matches(entry, provider, spec.version):
                if spec.version is not None and entry.version is None:
                    entry = entry.model_copy(update={"version": spec.version})
                return Plan(
                    alias_name, (entry,), latency_budget(budget, alias.latency_budget_ms), None
                )
    if isinstance(config.providers[provider].adapter, OfflineConfig):
        entry = ChainEntry(provider=provider, model="offline", version=spec.version)
        return Plan(None, (entry,), latency_budget(budget, DEFAULT_LATENCY_BUDGET_MS), None)
    raise RoutingError(
        "routing.unknown_model",
        f"model {_describe(provider, spec.version)} is not in any alias of the routing config, "
        "so its price and limits are unknown",
    )


def _matches(entry: ChainEntry, provider: str | None, version: str | None) -> bool:
    if provider is not None and entry.provider != provider:
        return False
    return version is None or version in (entry.version, entry.model)


def _describe(provider: str | None, version: str | None) -> str:
    return f"{provider or '*'}/{version or '*'}"
