"""The routing file: providers, pinned models per logical alias, prices, budgets, fallbacks.

One YAML or TOML file (``ASSETLINE_ROUTING_FILE``), validated by pydantic when a worker
starts so a typo fails the start, not the 10,000th request. Without a file the embedded
default routes everything to the offline provider, which is what the demo and CI run on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.inference.providers.anthropic import AnthropicConfig
from agents.inference.providers.base import Usage
from agents.inference.providers.http_image import HttpImageConfig
from agents.inference.providers.offline.provider import DEFAULT_VERSION as OFFLINE_VERSION
from agents.inference.providers.openai import OpenAIConfig
from schemas.records import AssetKind
from streams.config_files import (
    ConfigError,
    parse_config_model,
    read_config_text,
)

#: Seconds: real image APIs take 20-120 s, so the default budget is generous.
DEFAULT_LATENCY_BUDGET_MS: Final = 180_000
#: The embedded offline routing's budget (its calls take milliseconds; what it bounds is time
#: spent waiting in queues, see agents/inference/routing/router.py deadline_after_s).
OFFLINE_LATENCY_BUDGET_MS: Final = 3_600_000


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OfflineConfig(_Strict):
    """The built-in deterministic renderer; needs no settings."""

    type: Literal["offline"] = "offline"


AdapterConfig = Annotated[
    OfflineConfig | OpenAIConfig | AnthropicConfig | HttpImageConfig,
    Field(discriminator="type"),
]


class Price(_Strict):
    """USD per unit; each unit is priced at its own rate (an image is not a token)."""

    input_per_1k: float = Field(0.0, ge=0, description="USD per 1,000 input tokens.")
    output_per_1k: float = Field(0.0, ge=0, description="USD per 1,000 output tokens.")
    per_image: float = Field(0.0, ge=0, description="USD per generated image.")

    def cost(self, usage: Usage) -> float:
        return (
            usage.input_tokens * self.input_per_1k / 1000.0
            + usage.output_tokens * self.output_per_1k / 1000.0
            + usage.images * self.per_image
        )

    @property
    def free(self) -> bool:
        return self.input_per_1k == 0 and self.output_per_1k == 0 and self.per_image == 0


class RateLimit(_Strict):
    per_second: float = Field(gt=0, description="Sustained calls per second.")
    burst: int = Field(1, ge=1, description="Calls allowed at once after an idle spell.")


class BreakerConfig(_Strict):
    failure_threshold: int = Field(5, ge=1, description="Consecutive failures that open it.")
    reset_after_s: float = Field(30.0, gt=0, description="Open time before a half-open probe.")


class ProviderSpec(_Strict):
    """One backend: its adapter settings plus the router's policy for it.

    In the file the policy keys sit beside the adapter's own keys; they are split here so each
    adapter validates only what it understands.
    """

    adapter: AdapterConfig
    api_key: str | None = Field(
        None, description="Name of the key in ASSETLINE_API_KEYS; never the key itself."
    )
    rate_limit: RateLimit | None = None
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    max_in_flight: int | None = Field(
        None,
        ge=1,
        description="Ceiling of this worker's calls in flight to the provider; the adaptive "
        "limit finds the working level below it on its own (default ceiling: 1024).",
    )

    @model_validator(mode="before")
    @classmethod
    def _split_policy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "adapter" not in data:
            data = dict(data)
            policy = {
                key: data.pop(key)
                for key in ("api_key", "rate_limit", "breaker", "max_in_flight")
                if key in data
            }
            return {**policy, "adapter": data}
        return data


class ChainEntry(_Strict):
    """One rung of an alias's failover ladder."""

    provider: str
    model: str = Field(description="Model family, for metrics and humans (e.g. gpt-4o-mini).")
    version: str | None = Field(
        None, description="Pinned version sent on the wire exactly (e.g. gpt-4o-mini-2024-07-18)."
    )
    timeout_s: float = Field(60.0, gt=0, description="Per-call timeout.")
    max_retries: int = Field(2, ge=0, description="Retries of retryable errors before failover.")
    max_output_tokens: int | None = Field(None, ge=1)
    estimated_input_tokens: int | None = Field(
        None, ge=0, description="For the cost pre-check; default: prompt length / 4."
    )
    price: Price = Field(default_factory=Price)
    params: dict[str, Any] = Field(
        default_factory=dict, description="Extra body fields for the provider (temperature...)."
    )

    @property
    def wire_model(self) -> str:
        return self.version or self.model


class BatchRung(_Strict):
    """An alias's batch API rung: requests whose deadline leaves room for a batch go here,
    at the batch price (about half the synchronous one); see :mod:`agents.inference.batch`.

    A request is batched when what is left of its deadline (``created_at`` + its own
    ``latency_budget_ms``) exceeds ``window_s`` plus the reserve, ``max(margin_s, the
    alias's latency budget)``. A batch that fails, leaves the request out, or has not answered
    when only the reserve is left sends the request through the synchronous chain.
    """

    provider: str = Field(description="An openai or anthropic provider of the routing file.")
    model: str = Field(description="Model family, for metrics and humans.")
    version: str | None = Field(None, description="Pinned version sent on the wire exactly.")
    window_s: float = Field(
        86_400.0,
        gt=0,
        description="How long a batch may run before its requests fall back: at most the "
        "provider's completion window (24 h), less to bet on batches ending sooner.",
    )
    margin_s: float = Field(600.0, ge=0, description="Time kept for the synchronous fallback.")
    max_size: int = Field(500, ge=1, le=50_000, description="Requests per batch at most.")
    max_age_s: float = Field(
        60.0,
        gt=0,
        description="A batch is submitted this long after its first request, full or not.",
    )
    poll_s: float = Field(30.0, gt=0, description="Seconds between status polls.")
    timeout_s: float = Field(60.0, gt=0, description="Per HTTP call to the batch API.")
    max_output_tokens: int | None = Field(None, ge=1)
    estimated_input_tokens: int | None = Field(None, ge=0)
    price: Price = Field(default_factory=Price, description="The batch price (its own).")
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def entry(self) -> ChainEntry:
        """The rung as a chain entry (no retries): priced, metered and recorded like one."""
        return ChainEntry(
            provider=self.provider,
            model=self.model,
            version=self.version,
            timeout_s=self.timeout_s,
            max_retries=0,
            max_output_tokens=self.max_output_tokens,
            estimated_input_tokens=self.estimated_input_tokens,
            price=self.price,
            params=self.params,
        )


class Fallback(_Strict):
    """What to deliver, labelled FALLBACK, when every provider of the alias failed."""

    file: Path | None = Field(None, description="A cached asset, read once at start.")
    media_type: str | None = Field(None, description="Media type of 'file'; guessed if unset.")
    text: str | None = Field(None, description="Literal text (text/JSON/code aliases).")
    placeholder: bool = Field(False, description="Render one with the offline provider.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Fallback:
        chosen = [self.file is not None, self.text is not None, self.placeholder]
        if sum(chosen) != 1:
            raise ValueError("a fallback sets exactly one of 'file', 'text' or 'placeholder'")
        return self


class VersionSplit(ChainEntry):
    """A pinned model that takes ``share`` of an alias's traffic beside its chain: a canary
    (served and delivered in front of the chain) or a shadow (a mirror: generated and
    validated, never delivered). Which requests is decided by request id
    (:mod:`agents.inference.routing.versions`)."""

    share: float = Field(ge=0, le=1, description="Share of the alias's requests, 0..1.")


class Alias(_Strict):
    chain: list[ChainEntry] = Field(min_length=1)
    latency_budget_ms: int = Field(
        DEFAULT_LATENCY_BUDGET_MS,
        ge=1,
        description="Deadline of a request that sets none, from its created_at, across queues "
        "and every attempt (and the most one routing run may take, whatever the request sets).",
    )
    fallback: Fallback | None = None
    batch: BatchRung | None = Field(
        None, description="Batch API rung for requests whose deadline leaves room for it."
    )
    canary: VersionSplit | None = Field(
        None, description="Serves its share of the requests first; the chain is its failover."
    )
    shadow: VersionSplit | None = Field(
        None, description="Mirrors its share of the requests: generated, validated, never sent."
    )


#: A spend ceiling in USD: finite and never negative (a negative one was silently accepted).
Ceiling = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Budgets(_Strict):
    """Spend ceilings in USD, summed over every attempt of every request in the scope.

    ``default_tenant`` / ``default_campaign`` apply to each tenant / campaign the maps do not
    name (each gets its own ceiling of that size), so a producer cannot escape every ceiling
    by naming a campaign nobody budgeted. Unset = no ceiling, as before.
    """

    tenants: dict[str, Ceiling] = Field(default_factory=dict)
    campaigns: dict[str, Ceiling] = Field(default_factory=dict)
    default_tenant: Ceiling | None = Field(None, description="Ceiling of an unnamed tenant.")
    default_campaign: Ceiling | None = Field(None, description="Ceiling of an unnamed campaign.")

    def tenant_limit(self, tenant: str) -> float | None:
        return self.tenants.get(tenant, self.default_tenant)

    def campaign_limit(self, campaign_id: str) -> float | None:
        return self.campaigns.get(campaign_id, self.default_campaign)


class RetryDefaults(_Strict):
    base_s: float = Field(0.5, ge=0)
    cap_s: float = Field(20.0, ge=0)
    max_retry_after_s: float = Field(60.0, ge=0)


class RoutingConfig(_Strict):
    providers: dict[str, ProviderSpec]
    aliases: dict[str, Alias]
    default_alias: str = Field(description="Serves requests that name neither alias nor provider.")
    default_aliases: dict[AssetKind, str] = Field(
        default_factory=dict,
        description="Per asset kind, the alias for requests that name neither alias nor "
        "provider (e.g. IMAGE: hero-image); a kind not listed gets default_alias.",
    )
    budgets: Budgets = Field(default_factory=Budgets)
    retry: RetryDefaults = Field(default_factory=RetryDefaults)

    def default_alias_for(self, kind: AssetKind) -> str:
        """An IMAGE request without an alias must not land on a chat model's alias."""
        return self.default_aliases.get(kind, self.default_alias)

    @model_validator(mode="after")
    def _batch_rungs_resolve(self) -> RoutingConfig:
        for name, alias in self.aliases.items():
            rung = alias.batch
            if rung is None:
                continue
            spec = self.providers.get(rung.provider)
            if spec is None or not isinstance(spec.adapter, OpenAIConfig | AnthropicConfig):
                raise ValueError(
                    f"alias {name!r}: batch provider {rung.provider!r} is not an openai or "
                    "anthropic provider of this file"
                )
        return self

    @model_validator(mode="after")
    def _references_resolve(self) -> RoutingConfig:
        if self.default_alias not in self.aliases:
            raise ValueError(f"default_alias {self.default_alias!r} is not among the aliases")
        for kind, name in self.default_aliases.items():
            if name not in self.aliases:
                raise ValueError(f"default_aliases.{kind.value} {name!r} is not among the aliases")
        for name, alias in self.aliases.items():
            for entry in (*alias.chain, *filter(None, (alias.canary, alias.shadow))):
                if entry.provider not in self.providers:
                    raise ValueError(
                        f"alias {name!r} uses provider {entry.provider!r}, which is not defined"
                    )
        return self


def default_routing() -> RoutingConfig:
    """Everything on the offline provider: no network, no key, no cost."""
    return RoutingConfig(
        providers={"offline": ProviderSpec(adapter=OfflineConfig())},
        aliases={
            "default": Alias(
                chain=[ChainEntry(provider="offline", model="offline", version=OFFLINE_VERSION)],
                # The deadline runs from created_at across queueing: a burst of 100,000
                # requests on one worker must not time out waiting for a millisecond renderer.
                latency_budget_ms=OFFLINE_LATENCY_BUDGET_MS,
            )
        },
        default_alias="default",
    )


class RoutingFileError(ConfigError):
    """The routing file cannot be read or does not validate; the one-line message says where."""

    code = "config.routing_file"


ROUTING_SUFFIXES: Final = (".yaml", ".yml", ".toml")


def parse_routing(text: str, suffix: str, source: str = "routing file") -> RoutingConfig:
    """Parse YAML (``.yaml``/``.yml``) or TOML (``.toml``) text, through the safe reader."""
    if suffix not in ROUTING_SUFFIXES:
        raise RoutingFileError(f"{source}: must be .yaml, .yml or .toml, not {suffix!r}")
    return parse_config_model(text, suffix, source, RoutingConfig, RoutingFileError)


def routing_source(path: Path | None) -> str:
    """How start-up errors name the routing in use."""
    if path is None:
        return "the built-in offline routing (ASSETLINE_ROUTING_FILE is not set)"
    return f"routing file {path}"


def load_routing(path: Path | None) -> RoutingConfig:
    """The file at ``path``, or the embedded offline default when no file is configured."""
    if path is None:
        return default_routing()
    suffix = path.suffix.lower()
    if suffix not in ROUTING_SUFFIXES:
        raise RoutingFileError(f"{path}: routing file must be .yaml, .yml or .toml")
    try:
        text = read_config_text(path)
    except ConfigError as exc:
        raise RoutingFileError(str(exc)) from None
    config = parse_routing(text, suffix, str(path))
    return _resolve_fallback_paths(config, path.parent)


def _resolve_fallback_paths(config: RoutingConfig, base: Path) -> RoutingConfig:
    """Relative fallback files are relative to the routing file, not the worker's cwd."""
    aliases = {}
    for name, alias in config.aliases.items():
        fallback = alias.fallback
        if fallback is not None and fallback.file is not None and not fallback.file.is_absolute():
            fallback = fallback.model_copy(update={"file": base / fallback.file})
            alias = alias.model_copy(update={"fallback": fallback})
        aliases[name] = alias
    return config.model_copy(update={"aliases": aliases})
