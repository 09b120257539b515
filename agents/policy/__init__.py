"""Brand profiles: which checks run, with which parameters, per brand and campaign."""

from __future__ import annotations

from agents.policy.loader import ProfileBook, ProfileFileError, load_profiles
from agents.policy.profile import (
    DEFAULT_POLICY,
    BrandProfile,
    Policy,
    PolicyError,
)

__all__ = [
    "DEFAULT_POLICY",
    "BrandProfile",
    "Policy",
    "PolicyError",
    "ProfileBook",
    "ProfileFileError",
    "load_profiles",
]
