"""Brand image policy: allowed formats, size bounds, aspect ratio, file size, modes, transparency.

The policy is data (a brand profile's ``image`` section), validated when it is loaded, so a
contradiction such as ``min_width > max_width`` is refused up front instead of failing every
asset. Each rule is its own check with a stable code, and all share one :class:`ImageProber`,
so an asset is decoded once however many rules apply.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import ClassVar, Final, Literal

from PIL import ImageMode
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

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

#: ``16:9``, ``4:3``, ``1.91`` or ``1.91:1``: positive numbers, no signs or exponents.
_RATIO: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?::\s*(\d+(?:\.\d+)?)\s*)?$")

ImageFormatName = Literal["png", "jpeg", "webp"]
Transparency = Literal["allow", "forbid", "require"]


def parse_aspect_ratio(text: str) -> float:
    """``"16:9"`` -> 1.777..., ``"1.91"`` -> 1.91; ValueError for anything else."""
    match = _RATIO.match(text)
    if match is None:
        raise ValueError(f"aspect_ratio {text!r} is not 'W:H' or a decimal such as '1.91'")
    width, height = float(match.group(1)), float(match.group(2) or 1)
    if width <= 0 or height <= 0 or not math.isfinite(width / height):
        raise ValueError(f"aspect_ratio {text!r} must be positive on both sides")
    return width / height


class ImagePolicy(BaseModel):
    """What a brand accepts in an image; every unset field is 'no rule'."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    formats: list[ImageFormatName] | None = Field(None, min_length=1)
    width: PositiveInt | None = None
    height: PositiveInt | None = None
    min_width: PositiveInt | None = None
    max_width: PositiveInt | None = None
    min_height: PositiveInt | None = None
    max_height: PositiveInt | None = None
    aspect_ratio: str | None = None
    aspect_tolerance: float = Field(0.01, ge=0, lt=1, description="Relative, 0.01 = 1%.")
    max_bytes: PositiveInt | None = None
    color_modes: list[str] | None = Field(None, min_length=1)
    transparency: Transparency = "allow"
    allow_animation: bool = Field(
        False,
        description="Accept APNG/animated WebP (palette then checks every frame); "
        "refused as image.animated otherwise.",
    )

    @field_validator("aspect_ratio")
    @classmethod
    def _ratio_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_aspect_ratio(value)
        return value

    @field_validator("color_modes")
    @classmethod
    def _modes_exist(cls, value: list[str] | None) -> list[str] | None:
        for mode in value or ():
            try:
                ImageMode.getmode(mode)
            except KeyError:
                message = f"{mode!r} is not a Pillow image mode (e.g. RGB, RGBA, L, P)"
                raise ValueError(message) from None
        return value

    @model_validator(mode="after")
    def _satisfiable(self) -> ImagePolicy:
        """Refuse rules no image can meet; they would reject every asset, repairably, forever."""
        for axis in ("width", "height"):
            exact, low, high = (
                getattr(self, name) for name in (axis, f"min_{axis}", f"max_{axis}")
            )
            if low is not None and high is not None and low > high:
                raise ValueError(f"min_{axis} {low} is above max_{axis} {high}")
            if exact is not None and (
                (low is not None and exact < low) or (high is not None and exact > high)
            ):
                raise ValueError(f"{axis} {exact} is outside min_{axis}/max_{axis}")
        ratio = self.aspect_value
        if ratio is not None and self.width is not None and self.height is not None:
            off = abs(self.width / self.height / ratio - 1)
            if off > self.aspect_tolerance:
                raise ValueError(
                    f"{self.width}x{self.height} contradicts aspect_ratio {self.aspect_ratio}"
                )
        if self.transparency == "require" and self.formats == ["jpeg"]:
            raise ValueError("transparency 'require' cannot be met by JPEG, which has no alpha")
        return self

    @property
    def aspect_value(self) -> float | None:
        """The aspect ratio as width / height."""
        return None if self.aspect_ratio is None else parse_aspect_ratio(self.aspect_ratio)

    @property
    def constrains_dimensions(self) -> bool:
        """True when any exact or bounding size rule is set."""
        return any(
            value is not None
            for value in (
                self.width,
                self.height,
                self.min_width,
                self.max_width,
                self.min_height,
                self.max_height,
            )
        )


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
