"""Brand image policy: allowed formats, size bounds, aspect ratio, file size, modes, transparency.

The policy is data (a brand profile's ``image`` section), validated when it is loaded, so a
contradiction such as ``min_width > max_width`` is refused up front instead of failing every
asset. Each rule is its own check with a stable code, and all share one :class:`ImageProber`,
so an asset is decoded once however many rules apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Final

from agents.policy.rules import ImagePolicy, parse_aspect_ratio
from agents.validate.checks._base import Check, Subject, result
from agents.validate.checks.image import (
    FORMAT_NAMES,
    ImageProbe,
    ImageProber,
    alpha_extrema,
    not_decoded_result,
)
from schemas.records import AssetKind, CheckResult

_IMAGE: Final = frozenset({AssetKind.IMAGE})


@dataclass(frozen=True)
class ImageFormats:
    """``image.formats``: the container is one the brand allows."""

    policy: ImagePolicy
    prober: ImageProber = field(default_factory=ImageProber)
    code: ClassVar[str] = "image.formats"
    kinds: ClassVar[frozenset[AssetKind]] = _IMAGE

    def __call__(self, subject: Subject) -> CheckResult:
        probe = self.prober(subject.data)
        if not probe.decoded:
            return not_decoded_result(self.code, probe, probe.format)
        allowed = self.policy.formats
        if allowed is None:
            return result(self.code, True, "no format rule", probe.format)
        names = [FORMAT_NAMES[name] for name in allowed]
        if probe.format not in names:
            return result(
                self.code,
                False,
                f"format {probe.format} is not allowed; use {', '.join(names)}",
                probe.format,
            )
        return result(self.code, True, f"format {probe.format} is allowed", probe.format)


@dataclass(frozen=True)
class ImageDimensions:
    """``image.dimensions``: exact width/height and min/max bounds, all reported at once."""

    policy: ImagePolicy
    prober: ImageProber = field(default_factory=ImageProber)
    code: ClassVar[str] = "image.dimensions"
    kinds: ClassVar[frozenset[AssetKind]] = _IMAGE

    def __call__(self, subject: Subject) -> CheckResult:
        probe = self.prober(subject.data)
        if not probe.decoded or probe.width is None or probe.height is None:
            return not_decoded_result(self.code, probe, probe.dimensions)
        p = self.policy
        wrong: list[str] = []
        for axis, actual, exact, low, high in (
            ("width", probe.width, p.width, p.min_width, p.max_width),
            ("height", probe.height, p.height, p.min_height, p.max_height),
        ):
            if exact is not None and actual != exact:
                wrong.append(f"{axis} {actual} != {exact}")
            if low is not None and actual < low:
                wrong.append(f"{axis} {actual} < min_{axis} {low}")
            if high is not None and actual > high:
                wrong.append(f"{axis} {actual} > max_{axis} {high}")
        if wrong:
            return result(self.code, False, "; ".join(wrong), probe.dimensions)
        message = "dimensions within policy" if p.constrains_dimensions else "no dimension rule"
        return result(self.code, True, f"{probe.dimensions}: {message}", probe.dimensions)


@dataclass(frozen=True)
class ImageAspectRatio:
    """``image.aspect_ratio``: width / height within ``aspect_tolerance`` (relative) of the rule."""

    policy: ImagePolicy
    prober: ImageProber = field(default_factory=ImageProber)
    code: ClassVar[str] = "image.aspect_ratio"
    kinds: ClassVar[frozenset[AssetKind]] = _IMAGE

    def __call__(self, subject: Subject) -> CheckResult:
        probe = self.prober(subject.data)
        if not probe.decoded or probe.width is None or probe.height is None:
            return not_decoded_result(self.code, probe)
        actual = probe.width / probe.height
        measured = f"{actual:.4f}"
        rule = self.policy.aspect_ratio
        if rule is None:
            return result(self.code, True, "no aspect ratio rule", measured)
        try:
            target = parse_aspect_ratio(rule)
        except ValueError as exc:  # only reachable for a policy built without validation
            return result(self.code, False, f"unusable policy: {exc}", measured, repairable=False)
        off = abs(actual / target - 1)
        tolerance = self.policy.aspect_tolerance
        summary = f"aspect ratio {measured} ({probe.dimensions}) is {off:.2%} off {rule}"
        if off > tolerance:
            return result(
                self.code,
                False,
                f"{summary} ({target:.4f}), above the tolerance of {tolerance:.2%}",
                measured,
            )
        return result(self.code, True, f"{summary}, within {tolerance:.2%}", measured)


@dataclass(frozen=True)
class ImageMaxBytes:
    """``image.max_bytes``: the encoded file size; judged on the raw bytes, nothing is decoded."""

    policy: ImagePolicy
    code: ClassVar[str] = "image.max_bytes"
    kinds: ClassVar[frozenset[AssetKind]] = _IMAGE

    def __call__(self, subject: Subject) -> CheckResult:
        size = len(subject.data)
        limit = self.policy.max_bytes
        measured = str(size)
        if limit is None:
            return result(self.code, True, "no max_bytes rule", measured)
        if size > limit:
            return result(
                self.code,
                False,
                f"{size} bytes exceeds max_bytes {limit} by {size - limit}",
                measured,
            )
        return result(self.code, True, f"{size} bytes within max_bytes {limit}", measured)


@dataclass(frozen=True)
class ImageColorMode:
    """``image.color_mode``: the decoded Pillow mode (RGB, RGBA, L, P, ...) is allowed."""

    policy: ImagePolicy
    prober: ImageProber = field(default_factory=ImageProber)
    code: ClassVar[str] = "image.color_mode"
    kinds: ClassVar[frozenset[AssetKind]] = _IMAGE

    def __call__(self, subject: Subject) -> CheckResult:
        probe = self.prober(subject.data)
        if not probe.decoded:
            return not_decoded_result(self.code, probe, probe.mode)
        allowed = self.policy.color_modes
        if allowed is None:
            return result(self.code, True, "no color mode rule", probe.mode)
        if probe.mode not in allowed:
            return result(
                self.code,
                False,
                f"mode {probe.mode} is not allowed; use {', '.join(allowed)}",
                probe.mode,
            )
        return result(self.code, True, f"mode {probe.mode} is allowed", probe.mode)


@dataclass(frozen=True)
class ImageTransparency:
    """``image.transparency``: 'forbid' wants every pixel opaque, 'require' at least one not.

    A pixel is transparent when its alpha is below 255, whether the alpha comes from an alpha
    band (RGBA, LA, PA), a palette's tRNS entries, or a tRNS colour key.
    """

    policy: ImagePolicy
    prober: ImageProber = field(default_factory=ImageProber)
    code: ClassVar[str] = "image.transparency"
    kinds: ClassVar[frozenset[AssetKind]] = _IMAGE

    def __call__(self, subject: Subject) -> CheckResult:
        rule = self.policy.transparency
        probe = self.prober(subject.data)
        if probe.image is None:
            return not_decoded_result(self.code, probe)
        if rule == "allow":
            return result(self.code, True, "transparency allowed", None)
        extrema = alpha_extrema(probe.image)
        lowest = 255 if extrema is None else extrema[0]
        measured = f"min alpha {lowest}"
        transparent = lowest < 255
        if rule == "forbid" and transparent:
            return result(
                self.code,
                False,
                f"transparency is forbidden, but some pixels have alpha down to {lowest}",
                measured,
            )
        if rule == "require" and not transparent:
            found = _opacity(probe)
            return result(self.code, False, f"transparency is required, but {found}", measured)
        state = "has transparent pixels" if transparent else "is fully opaque"
        return result(self.code, True, f"image {state}, as required", measured)


def _opacity(probe: ImageProbe) -> str:
    if probe.image is not None and probe.image.has_transparency_data:
        return f"every pixel of the {probe.mode} image is opaque"
    return f"the {probe.mode} image has no alpha channel or transparency key"


def image_policy_checks(policy: ImagePolicy, prober: ImageProber) -> tuple[Check, ...]:
    """The checks for the rules ``policy`` sets, in a stable order, all on the given prober."""
    checks: list[Check] = []
    if policy.formats is not None:
        checks.append(ImageFormats(policy, prober))
    if policy.constrains_dimensions:
        checks.append(ImageDimensions(policy, prober))
    if policy.aspect_ratio is not None:
        checks.append(ImageAspectRatio(policy, prober))
    if policy.max_bytes is not None:
        checks.append(ImageMaxBytes(policy))
    if policy.color_modes is not None:
        checks.append(ImageColorMode(policy, prober))
    if policy.transparency != "allow":
        checks.append(ImageTransparency(policy, prober))
    return tuple(checks)
