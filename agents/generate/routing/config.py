"""The routing file: providers, pinned models per logical alias, prices, budgets, fallbacks.

One YAML or TOML file (``ASSETLINE_ROUTING_FILE``), validated by pydantic when a worker
starts so a typo fails the start, not the 10,000th request. Without a file the embedded
default routes everything to the offline provider, which is what the demo and CI run on.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agents.generate.providers._base import Usage
from agents.generate.providers.anthropic import AnthropicConfig
from agents.generate.providers.http_image import HttpImageConfig
from agents.generate.providers.offline.provider import DEFAULT_VERSION as OFFLINE_VERSION
from agents.generate.providers.openai import OpenAIConfig

#: Seconds: real image APIs take 20-120 s, so the default budget is generous.
DEFAULT_LATENCY_BUDGET_MS: Final = 180_000


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

    @model_validator(mode="before")
    @classmethod
    def _split_policy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "adapter" not in data:
            data = dict(data)
            policy = {
                key: data.pop(key) for key in ("api_key", "rate_limit", "breaker") if key in data
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


class Alias(_Strict):
    chain: list[ChainEntry] = Field(min_length=1)
    latency_budget_ms: int = Field(DEFAULT_LATENCY_BUDGET_MS, ge=1)
    fallback: Fallback | None = None


class Budgets(_Strict):
    """Spend ceilings in USD, summed over every attempt of every request in the scope."""

    tenants: dict[str, float] = Field(default_factory=dict)
    campaigns: dict[str, float] = Field(default_factory=dict)


class RetryDefaults(_Strict):
    base_s: float = Field(0.5, ge=0)
    cap_s: float = Field(20.0, ge=0)
    max_retry_after_s: float = Field(60.0, ge=0)


class RoutingConfig(_Strict):
    providers: dict[str, ProviderSpec]
    aliases: dict[str, Alias]
    default_alias: str = Field(description="Serves requests that name neither alias nor provider.")
    budgets: Budgets = Field(default_factory=Budgets)
    retry: RetryDefaults = Field(default_factory=RetryDefaults)

    @model_validator(mode="after")
    def _references_resolve(self) -> RoutingConfig:
        if self.default_alias not in self.aliases:
            raise ValueError(f"default_alias {self.default_alias!r} is not among the aliases")
        for name, alias in self.aliases.items():
            for entry in alias.chain:
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
                chain=[ChainEntry(provider="offline", model="offline", version=OFFLINE_VERSION)]
            )
        },
        default_alias="default",
    )


class RoutingFileError(ValueError):
    """The routing file cannot be read or does not validate; the message says where."""


def parse_routing(text: str, suffix: str) -> RoutingConfig:
    """Parse YAML (``.yaml``/``.yml``) or TOML (``.toml``) text."""
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise RoutingFileError(f"routing file must be .yaml, .yml or .toml, not {suffix!r}")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise RoutingFileError(f"routing file does not parse: {exc}") from exc
    try:
        return RoutingConfig.model_validate(data)
    except ValidationError as exc:
        raise RoutingFileError(f"routing file is invalid: {exc}") from exc


def load_routing(path: Path | None) -> RoutingConfig:
    """The file at ``path``, or the embedded offline default when no file is configured."""
    if path is None:
        return default_routing()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutingFileError(f"cannot read routing file {path}: {exc}") from exc
    config = parse_routing(text, path.suffix.lower())
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
