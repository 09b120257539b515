"""The routing files in examples/ (and the README's) stay valid as the config model changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.inference.providers.offline import OfflineProvider
from agents.inference.routing.adapters import MissingKeyError, build_adapters
from agents.inference.routing.config import load_routing

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "routing").glob("*.*"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_routing_file_is_valid(path: Path) -> None:
    config = load_routing(path)
    assert config.aliases[config.default_alias].chain


def test_the_local_openai_example_needs_its_keys_and_builds_with_them() -> None:
    from pydantic import SecretStr

    config = load_routing(Path(EXAMPLES[0]))
    with pytest.raises(MissingKeyError, match="ASSETLINE_API_KEYS"):
        build_adapters(config, {}, OfflineProvider())
    keys = {"openai": SecretStr("sk-x"), "anthropic": SecretStr("ak-x")}
    adapters = build_adapters(config, keys, OfflineProvider())
    assert set(adapters) == set(config.providers)
