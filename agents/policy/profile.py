"""The brand profile model: one pydantic model per file, campaign overrides merged over it.

A profile is configuration written by people, so it is strict (unknown keys are errors) and is
validated when a worker starts: a typo fails the start, not the 10,000th asset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from agents.policy.rules import ImagePolicy, JudgePolicy, PalettePolicy, TextPolicy


class Policy(BaseModel):
    """What one brand (and campaign) demands of an asset before it may be delivered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, description="Profile id; requests name it in brand_profile_id.")
    name: str | None = Field(None, description="Display name of the brand.")
    copyright: str | None = Field(None, description="Copyright line stamped into assets.")
    creator: str | None = Field(None, description="Creator/owner stamped into assets.")
    metadata_keys: list[str] = Field(
        default_factory=list,
        description="Request metadata entries that may be stamped into delivered files; "
        "others stay out (they may be personal data).",
    )
    max_attempts: int = Field(
        3, ge=1, le=10, description="Generations per request, the first one included."
    )
    review: bool = Field(
        True,
        description="Send failures that cannot be repaired (or ran out of attempts) to a "
        "person; false rejects them outright.",
    )
    image: ImagePolicy | None = None
    palette: PalettePolicy | None = None
    text: TextPolicy | None = None
    judge: JudgePolicy | None = None
    label: str = Field("", description="'<profile>' or '<profile>/<campaign>'; set on load.")


class BrandProfile(Policy):
    """A profile file: the brand's policy plus partial overrides per campaign id."""

    campaigns: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Campaign id -> keys to override; mappings merge, everything else replaces.",
    )


#: Requests without a brand profile keep the line's original behaviour: the request's own
#: constraints are checked, and a failure is final (no re-generation, no review).
DEFAULT_POLICY: Final = Policy(id="default", max_attempts=1, review=False, label="default")


@dataclass(frozen=True)
class PolicyError:
    """Why no policy applies to a request; becomes a FAILED completion with this reason."""

    code: str
    message: str


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into ``base``: nested mappings merge, other values replace.

    Lists replace on purpose: a campaign that lists its own prohibited terms means exactly
    those, and an additive merge would give it no way to drop one.
    """
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge(current, value)
        else:
            merged[key] = value
    return merged
