"""The routing file: YAML and TOML, validated at start, references checked, keys by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.inference.providers.base import Usage
from agents.inference.providers.openai import OpenAIConfig
from agents.inference.routing.config import (
    OfflineConfig,
    Price,
    RoutingFileError,
    default_routing,
    load_routing,
    parse_routing,
)
from schemas.records import AssetKind

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
        ("providers: [", r"routing.yaml:1: not valid YAML"),
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


def test_an_alias_bomb_in_the_routing_file_is_refused_at_once(tmp_path: Path) -> None:
    """Before: accepted, and every call json-dumped 9**8 strings of a provider's ``params``."""
    import time

    rows = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    rows += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    params = "\n        params:\n" + "\n".join(" " * 10 + row for row in rows)
    text = YAML.replace("        timeout_s: 20", "        timeout_s: 20" + params, 1)
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    started = time.perf_counter()
    with pytest.raises(
        RoutingFileError, match=r"routing\.yaml:\d+: not valid YAML: YAML anchor &l0"
    ):
        load_routing(path)
    assert time.perf_counter() - started < 2.0


def test_a_key_written_twice_in_the_routing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(YAML + "default_alias: offline\n")
    with pytest.raises(RoutingFileError) as caught:
        load_routing(path)
    assert "not valid YAML: duplicate key 'default_alias' (first at line" in str(caught.value)
    toml = tmp_path / "routing.toml"
    toml.write_text('default_alias = "other"\n' + TOML)
    with pytest.raises(RoutingFileError, match=r"routing\.toml:\d+: not valid TOML"):
        load_routing(toml)


def test_validation_errors_are_one_line_naming_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(YAML.replace("max_retries: 1", "max_retries: -1"))
    with pytest.raises(RoutingFileError) as caught:
        load_routing(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: aliases.copy-default.chain.0.max_retries: ")
    assert "\n" not in message


def test_default_aliases_per_kind_load_and_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(YAML + "default_aliases: {IMAGE: copy-default}\n")
    config = load_routing(path)
    assert config.default_alias_for(AssetKind.IMAGE) == "copy-default"
    assert config.default_alias_for(AssetKind.TEXT) == "copy-default"
    path.write_text(YAML + "default_aliases: {IMAGE: hero-image}\n")
    with pytest.raises(RoutingFileError) as caught:
        load_routing(path)
    assert "default_aliases.IMAGE 'hero-image' is not among the aliases" in str(caught.value)
    path.write_text(YAML + "default_aliases: {VIDEO: copy-default}\n")
    with pytest.raises(RoutingFileError, match=r"default_aliases\.VIDEO\.\[key\]"):
        load_routing(path)
