"""The routing file: YAML and TOML, validated at start, references checked, keys by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.generate.providers._base import Usage
from agents.generate.providers.openai import OpenAIConfig
from agents.generate.routing.config import (
    OfflineConfig,
    Price,
    RoutingFileError,
    default_routing,
    load_routing,
    parse_routing,
)

YAML = """
providers:
  local-llm:
    type: openai
    base_url: http://127.0.0.1:8000/v1
    api_key: local
    rate_limit: {per_second: 5, burst: 2}
    breaker: {failure_threshold: 3, reset_after_s: 10}
  offline:
    type: offline
aliases:
  copy-default:
    latency_budget_ms: 30000
    chain:
      - provider: local-llm
        model: qwen2.5
        version: qwen2.5-7b-instruct-q4
        timeout_s: 20
        max_retries: 1
        price: {input_per_1k: 0.001, output_per_1k: 0.002}
      - {provider: offline, model: offline, version: offline-1}
    fallback: {text: "Our best offers, every day."}
default_alias: copy-default
budgets:
  campaigns: {spring: 12.5}
"""

TOML = """
default_alias = "hero-image"

[providers.offline]
type = "offline"

[aliases.hero-image]
chain = [{ provider = "offline", model = "offline", version = "offline-1" }]
fallback = { placeholder = true }

[budgets.tenants]
acme = 100.0
"""


def test_yaml_file_loads_with_policies_split_from_adapter_settings(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(YAML)
    config = load_routing(path)
    spec = config.providers["local-llm"]
    assert isinstance(spec.adapter, OpenAIConfig)
    assert spec.adapter.base_url.rstrip("/") == "http://127.0.0.1:8000/v1"
    assert spec.api_key == "local"
    assert spec.rate_limit is not None
    assert spec.rate_limit.burst == 2
    assert spec.breaker.failure_threshold == 3
    assert isinstance(config.providers["offline"].adapter, OfflineConfig)
    alias = config.aliases["copy-default"]
    assert alias.chain[0].wire_model == "qwen2.5-7b-instruct-q4"
    assert alias.chain[0].max_retries == 1
    assert alias.fallback is not None
    assert alias.fallback.text
    assert config.budgets.campaigns == {"spring": 12.5}


def test_toml_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "routing.toml"
    path.write_text(TOML)
    config = load_routing(path)
    assert config.default_alias == "hero-image"
    fallback = config.aliases["hero-image"].fallback
    assert fallback is not None
    assert fallback.placeholder
    assert config.budgets.tenants == {"acme": 100.0}


def test_no_file_means_everything_offline() -> None:
    config = load_routing(None)
    assert config == default_routing()
    assert [e.provider for e in config.aliases[config.default_alias].chain] == ["offline"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (YAML.replace("default_alias: copy-default", "default_alias: nope"), "default_alias"),
        (YAML.replace("- {provider: offline,", "- {provider: ghost,"), "ghost"),
        (YAML.replace("type: openai", "type: openia"), "openia"),
        (YAML.replace("max_retries: 1", "max_retries: -1"), "max_retries"),
        (YAML.replace("timeout_s: 20", "timeout_s: 20\n        temprature: 1"), "temprature"),
        (
            YAML.replace(
                'fallback: {text: "Our best offers, every day."}',
                "fallback: {text: hi, placeholder: true}",
            ),
            "exactly one",
        ),
        ("providers: [", "does not parse"),
    ],
)
def test_invalid_files_fail_with_a_message_that_points_at_the_mistake(
    tmp_path: Path, text: str, needle: str
) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    with pytest.raises(RoutingFileError, match=needle):
        load_routing(path)


def test_unknown_suffix_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(RoutingFileError, match=r"must be \.yaml"):
        parse_routing("{}", ".json")
    with pytest.raises(RoutingFileError, match="cannot read"):
        load_routing(tmp_path / "absent.yaml")


def test_relative_fallback_files_resolve_next_to_the_routing_file(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    path = tmp_path / "routing.yaml"
    path.write_text(TOML.replace("placeholder = true", 'file = "assets/hero.png"'))
    path = path.rename(tmp_path / "routing.toml")
    fallback = load_routing(path).aliases["hero-image"].fallback
    assert fallback is not None
    assert fallback.file == tmp_path / "assets" / "hero.png"


def test_price_charges_each_unit_at_its_own_rate() -> None:
    price = Price(input_per_1k=0.5, output_per_1k=1.5, per_image=0.04)
    assert price.cost(Usage(input_tokens=2000, output_tokens=1000)) == pytest.approx(2.5)
    assert price.cost(Usage(images=3)) == pytest.approx(0.12)
    assert price.cost(Usage(input_tokens=100, images=1)) == pytest.approx(0.09)
    assert Price().free
    assert not price.free
