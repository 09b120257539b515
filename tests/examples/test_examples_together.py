"""Every example routing file works with every example profile, the README's snippets included.

The README's acme profile once named a judge provider (``primary``) that no routing file had,
so a newcomer following it got a worker that stopped at start-up. Each file is read through the
same safe reader as the worker, then every (routing, profiles) pair is checked the way the
validate stage checks it at start-up.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from agents.alerts.channels import ChannelsFile
from agents.deliver.destinations import parse_destinations
from agents.inference.providers.offline import OfflineProvider
from agents.inference.routing.adapters import build_adapters
from agents.inference.routing.config import RoutingConfig, load_routing, parse_routing
from agents.inference.routing.plan import plan_for
from agents.policy import ProfileBook, ProfileFileError, load_profiles
from agents.policy.loader import build_policies
from agents.tenants import TenantsFile
from assetline.campaign.expand import expand, load_template, read_segments
from schemas.records import AssetKind
from streams.config_files import parse_config_text

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def readme_yaml_blocks() -> list[tuple[str, dict[str, Any]]]:
    """Every complete YAML file in a README code block, named by its first line number."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```yaml\n(.*?)^```", text, flags=re.S | re.M):
        line = text.count("\n", 0, match.start()) + 1
        data = parse_config_text(match.group(1), ".yaml", f"README.md:{line}")
        assert isinstance(data, dict), f"README.md:{line} is not a complete YAML file"
        blocks.append((f"README.md:{line}", data))
    return blocks


def kind_of(data: dict[str, Any]) -> str:
    """Which configuration file a README block is, by its top-level keys."""
    if "providers" in data:
        return "routing"
    if "tenants" in data:
        return "tenants"
    if "destinations" in data:
        return "destinations"
    if "channels" in data:
        return "alert channels"
    return "profile"


def uncommented_judge(path: Path) -> str:
    """The profile with its commented-out ``judge:`` block switched on, as its comment says."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index("# judge:")
    out = [*lines[:start], "judge:"]
    for line in lines[start + 1 :]:
        if not line.startswith("#   "):
            break
        out.append(line[2:])
    return "\n".join(out + lines[len(out) :]) + "\n"


def routings() -> dict[str, RoutingConfig]:
    found = {
        str(path.relative_to(ROOT)): load_routing(path)
        for path in sorted((ROOT / "examples" / "routing").iterdir())
    }
    for name, data in readme_yaml_blocks():
        if kind_of(data) == "routing":
            found[name] = RoutingConfig.model_validate(data)
    return found


def profile_books(tmp_path: Path) -> dict[str, ProfileBook]:
    found = {
        str(folder.relative_to(ROOT)): load_profiles(folder)
        for folder in (ROOT / "examples" / "profiles", ROOT / "bench" / "profiles")
    }
    for name, data in readme_yaml_blocks():
        if kind_of(data) == "profile":
            found[name] = ProfileBook(build_policies(data, name), {data["id"]: Path(name)})
    judged = tmp_path / "judged"
    judged.mkdir()
    (judged / "acme.yaml").write_text(uncommented_judge(ROOT / "examples/profiles/acme.yaml"))
    found["examples/profiles/acme.yaml with its judge uncommented"] = load_profiles(judged)
    return found


def keys_for(config: RoutingConfig) -> dict[str, SecretStr]:
    return {s.api_key: SecretStr("k") for s in config.providers.values() if s.api_key}


def test_the_readme_yaml_blocks_are_complete_valid_files() -> None:
    kinds = sorted(kind_of(data) for _, data in readme_yaml_blocks())
    assert kinds.count("routing") >= 1  # each is checked with every profile below
    assert kinds.count("profile") == 1
    assert kinds.count("destinations") >= 1
    assert kinds.count("alert channels") >= 1
    for name, data in readme_yaml_blocks():
        if kind_of(data) == "tenants":
            TenantsFile.model_validate(data)
        elif kind_of(data) == "destinations":
            parse_destinations(data, name)
        elif kind_of(data) == "alert channels":
            ChannelsFile.model_validate(data)


def test_every_profile_loads_with_every_routing_file(tmp_path: Path) -> None:
    books = profile_books(tmp_path)
    configs = routings()
    assert len(configs) >= 2
    judged = [name for name, book in books.items() if any(p.judge for p in book.policies.values())]
    assert len(judged) >= 2, "the README profile and the uncommented example both have a judge"
    for routing_name, config in configs.items():
        adapters = build_adapters(config, keys_for(config), OfflineProvider())
        for book_name, book in books.items():
            try:
                book.require_judge_providers(adapters, routing_name)
            except ProfileFileError as exc:
                pytest.fail(f"{book_name} with {routing_name}: {exc}")


def test_the_example_campaign_routes_with_every_routing_file() -> None:
    """Its IMAGE rows name no alias: they must reach an image alias, not the chat default."""
    template = load_template(ROOT / "examples" / "campaigns" / "spring-launch.yaml")
    for segments in ("segments.csv", "segments.jsonl"):
        campaign = expand(template, read_segments(ROOT / "examples" / "campaigns" / segments))
        kinds = {r.kind for r in campaign.requests}
        assert kinds == {AssetKind.TEXT, AssetKind.IMAGE}
        for name, config in routings().items():
            for request in campaign.requests:
                plan = plan_for(request, config)
                expected = "hero-image" if request.kind is AssetKind.IMAGE else "copy-default"
                assert plan.alias == expected, f"{name}: {request.kind} -> {plan.alias}"


def test_a_profile_naming_a_missing_judge_provider_fails_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(
        uncommented_judge(ROOT / "examples/profiles/acme.yaml").replace(
            "provider: openai", "provider: primary"
        )
    )
    book = load_profiles(tmp_path)
    config = parse_routing(
        (ROOT / "examples/routing/local-openai.yaml").read_text(), ".yaml", "local-openai.yaml"
    )
    with pytest.raises(ProfileFileError) as caught:
        book.require_judge_providers(config.providers, "routing file local-openai.yaml")
    assert str(caught.value) == (
        f"{tmp_path / 'acme.yaml'}: profile 'acme': judge provider 'primary' is not in routing "
        "file local-openai.yaml (providers there: anthropic, local, offline, openai)"
    )
