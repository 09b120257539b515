"""Build one adapter per provider of the routing config, with its key from settings."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from pydantic import SecretStr

from agents.inference.providers.anthropic import AnthropicConfig, AnthropicProvider
from agents.inference.providers.base import Provider
from agents.inference.providers.http_image import HttpImageConfig, HttpImageProvider
from agents.inference.providers.offline import OfflineProvider
from agents.inference.providers.openai import OpenAIConfig, OpenAIProvider
from agents.inference.routing.config import RoutingConfig
from streams.config_files import ConfigError


class MissingKeyError(ConfigError):
    """A provider names an API key that settings do not have; fails the worker's start."""

    code = "config.missing_key"


def build_adapters(
    config: RoutingConfig,
    api_keys: Mapping[str, SecretStr],
    offline: OfflineProvider,
) -> dict[str, Provider]:
    adapters: dict[str, Provider] = {}
    for name, spec in config.providers.items():
        key: SecretStr | None = None
        if spec.api_key is not None:
            if spec.api_key not in api_keys:
                raise MissingKeyError(
                    f"provider {name!r} needs API key {spec.api_key!r}: set it in "
                    "ASSETLINE_API_KEYS (a JSON object of name -> key)"
                )
            key = api_keys[spec.api_key]
        adapter = spec.adapter
        if isinstance(adapter, OpenAIConfig):
            adapters[name] = OpenAIProvider(name, adapter, key)
        elif isinstance(adapter, AnthropicConfig):
            adapters[name] = AnthropicProvider(name, adapter, key)
        elif isinstance(adapter, HttpImageConfig):
            adapters[name] = HttpImageProvider(name, adapter, key)
        else:
            adapters[name] = offline
    return adapters


async def close_adapters(adapters: Mapping[str, object]) -> None:
    """Close the HTTP pools of the adapters that own one."""
    for adapter in adapters.values():
        aclose = getattr(adapter, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
