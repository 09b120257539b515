"""Loading a folder of profile files and resolving the policy of one request.

Every campaign override is merged and validated at load time, so resolving a request's policy
while the line runs is a dictionary lookup that cannot fail on a bad file.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from agents.policy.profile import DEFAULT_POLICY, BrandProfile, Policy, PolicyError, merge
from streams.config_files import (
    ConfigError,
    parse_config_text,
    read_config_text,
    validation_summary,
)

SUFFIXES: Final = (".yaml", ".yml", ".toml", ".json")

UNKNOWN_PROFILE: Final = "policy.unknown_profile"


class ProfileFileError(ConfigError):
    """A profile file (or a campaign override in it) is not a valid profile."""

    code = "config.profile_file"


@dataclass(frozen=True)
class ProfileBook:
    """Every resolved policy, keyed by (profile id, campaign id or None for the brand default)."""

    policies: Mapping[tuple[str, str | None], Policy] = field(default_factory=dict)
    #: The file each profile id came from, so start-up errors can name it.
    origins: Mapping[str, Path] = field(default_factory=dict)

    def resolve(self, profile_id: str | None, campaign_id: str) -> Policy | PolicyError:
        """The campaign's override when there is one, else the brand's policy.

        No profile id means the ``default`` profile when the folder has one, else the built-in
        :data:`DEFAULT_POLICY`; an id the folder does not have is an error, never a silent
        fallback to weaker rules.
        """
        if profile_id is None:
            profile_id = "default"
            if (profile_id, None) not in self.policies:
                return DEFAULT_POLICY
        policy = self.policies.get((profile_id, campaign_id)) or self.policies.get(
            (profile_id, None)
        )
        if policy is None:
            known = ", ".join(sorted({pid for pid, _ in self.policies})) or "none"
            return PolicyError(
                UNKNOWN_PROFILE, f"unknown brand profile {profile_id!r} (known: {known})"
            )
        return policy

    def __len__(self) -> int:
        return len({pid for pid, _ in self.policies})

    def require_judge_providers(self, providers: Collection[str], routing_source: str) -> None:
        """Every judge names a provider of the routing file, or the start fails in one line.

        The line names the profile file, the profile (and campaign), the provider and the
        routing file, so the fix is obvious without a traceback.
        """
        for (profile_id, _campaign), policy in sorted(
            self.policies.items(), key=lambda item: (item[0][0], item[0][1] or "")
        ):
            if policy.judge is None or policy.judge.provider in providers:
                continue
            origin = self.origins.get(profile_id, "brand profiles")
            known = ", ".join(sorted(providers)) or "none"
            raise ProfileFileError(
                f"{origin}: profile {policy.label!r}: judge provider {policy.judge.provider!r} "
                f"is not in {routing_source} (providers there: {known})"
            )


def parse_profile_text(text: str, suffix: str, source: str) -> dict[str, Any]:
    """Parse one profile through the safe reader (no YAML aliases, no duplicate keys)."""
    try:
        data = parse_config_text(text, suffix if suffix in SUFFIXES else ".yaml", source)
    except ConfigError as exc:
        raise ProfileFileError(str(exc)) from None
    if not isinstance(data, dict):
        raise ProfileFileError(f"{source}: a profile is a mapping, got {type(data).__name__}")
    return data


def build_policies(data: Mapping[str, Any], source: str) -> dict[tuple[str, str | None], Policy]:
    """The brand policy and one merged policy per campaign, all validated now."""
    try:
        profile = BrandProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileFileError(validation_summary(exc, source)) from None
    base = profile.model_dump(exclude={"campaigns", "label"}, exclude_unset=True)
    policies: dict[tuple[str, str | None], Policy] = {
        (profile.id, None): Policy.model_validate({**base, "label": profile.id})
    }
    for campaign, override in profile.campaigns.items():
        if "id" in override and override["id"] != profile.id:
            raise ProfileFileError(f"{source}: campaign {campaign!r} cannot change the profile id")
        merged = merge(base, override)
        try:
            policies[(profile.id, campaign)] = Policy.model_validate(
                {**merged, "label": f"{profile.id}/{campaign}"}
            )
        except ValidationError as exc:
            summary = validation_summary(exc, f"{source}: campaign {campaign!r}")
            raise ProfileFileError(summary) from None
    return policies


def load_profiles(folder: Path | None) -> ProfileBook:
    """Every ``*.yaml|*.yml|*.toml|*.json`` file in ``folder`` is one brand profile.

    The file name is the profile id unless the file says otherwise; two files claiming one id
    are an error, because which one won would depend on directory order.
    """
    if folder is None:
        return ProfileBook()
    if not folder.is_dir():
        raise ProfileFileError(f"profiles folder {folder} does not exist or is not a folder")
    policies: dict[tuple[str, str | None], Policy] = {}
    origins: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix not in SUFFIXES or not path.is_file():
            continue
        try:
            text = read_config_text(path)
        except ConfigError as exc:
            raise ProfileFileError(str(exc)) from None
        data = parse_profile_text(text, path.suffix, str(path))
        data.setdefault("id", path.stem)
        found = build_policies(data, str(path))
        profile_id = data["id"]
        if profile_id in origins:
            raise ProfileFileError(
                f"{path}: profile id {profile_id!r} is already defined by {origins[profile_id]}"
            )
        origins[profile_id] = path
        policies.update(found)
    return ProfileBook(policies, origins)
