"""The brand profiles in examples/ (and the README's) stay valid as the policy model changes."""

from __future__ import annotations

from pathlib import Path

import yaml

from agents.policy import PolicyError, load_profiles
from agents.policy.loader import build_policies

ROOT = Path(__file__).parents[2]


def test_example_profiles_load_with_their_campaigns() -> None:
    book = load_profiles(ROOT / "examples" / "profiles")
    policy = book.resolve("acme", "spring-sale")
    assert not isinstance(policy, PolicyError)
    assert policy.label == "acme/spring-sale"
    assert policy.text is not None
    assert "Offer ends 31 March." in policy.text.required
    assert policy.palette is not None
    assert policy.palette.min_share == 0.85


def test_the_readme_profile_is_valid() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Brand profiles") :]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    policies = build_policies(yaml.safe_load(block), "README.md")
    assert set(policies) == {("acme", None), ("acme", "spring-sale")}
    assert policies[("acme", None)].judge is not None


def test_the_bench_profile_is_valid() -> None:
    book = load_profiles(ROOT / "bench" / "profiles")
    policy = book.resolve("full-suite", "any")
    assert not isinstance(policy, PolicyError)
    assert policy.palette is not None
    assert policy.image is not None
