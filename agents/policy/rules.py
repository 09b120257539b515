"""The rule models of a brand profile: what a brand demands of images, palettes, text and judging.

They are data, validated when a profiles file is loaded (so a contradiction such as
``min_width > max_width`` is refused up front instead of failing every asset), and they belong
to the policy rather than to the checks that enforce them: the deliver stage reads profiles too.
The validate stage's checks (:mod:`agents.validate.checks`) turn them into rules that run.
"""

from __future__ import annotations

import math
import re
from typing import Final, Literal

from PIL import ImageMode
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    field_validator,
    model_validator,
)

from agents.inference.routing.config import Price
from agents.policy.text_normalize import skeleton
from schemas.records import AssetKind

# --- image -------------------------------------------------------------------------------------

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


# --- palette -----------------------------------------------------------------------------------

HEX_COLOR: Final = re.compile(r"^#[0-9a-fA-F]{6}$")


class PalettePolicy(BaseModel):
    """A brand palette and how strictly an image must keep to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    colors: list[str] = Field(min_length=1, description="Brand colours as '#RRGGBB'.")
    max_delta_e: float = Field(10.0, ge=0, allow_inf_nan=False)
    min_share: float = Field(0.8, ge=0, le=1)
    quantize_colors: int = Field(8, ge=1, le=256)
    sample_side: int = Field(64, ge=1, le=1024)
    ignore_transparent: bool = True

    @field_validator("colors")
    @classmethod
    def _hex_colors(cls, value: list[str]) -> list[str]:
        """Lower-cased, so messages and comparisons see one spelling."""
        for color in value:
            if not HEX_COLOR.match(color):
                raise ValueError(f"{color!r} is not a '#RRGGBB' colour")
        return [color.lower() for color in value]


# --- text --------------------------------------------------------------------------------------

ISO_639_1: Final = re.compile(r"^[a-z]{2}$")


def _check_phrases(values: list[str], what: str) -> list[str]:
    for value in values:
        if not value.strip():
            raise ValueError(f"{what} entries must not be blank")
    return values


class TextPolicy(BaseModel):
    """What a brand demands of text; every unset field is 'no rule'."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prohibited: list[str] = Field(
        default_factory=list, description="Terms and phrases that must not appear (obfuscated)."
    )
    required: list[str] = Field(
        default_factory=list,
        description="Disclaimers that must appear; compared ignoring case and whitespace.",
    )
    min_chars: int | None = Field(None, ge=0, description="Minimum length in code points.")
    max_chars: int | None = Field(None, ge=0, description="Maximum length in code points.")
    language: str | None = Field(
        None,
        description="ISO 639-1 code the text must be in; unset uses constraints.language.",
    )
    min_language_confidence: float = Field(
        0.5, ge=0, le=1, description="Detector confidence the language needs to pass."
    )
    min_sentiment: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="Lowest VADER compound score (-1 negative .. 1 positive) copy may have; "
        "English copy only (other languages score near 0).",
    )

    @field_validator("prohibited")
    @classmethod
    def _terms_match_something(cls, value: list[str]) -> list[str]:
        """A term without letters or digits would match everywhere or nowhere; refuse it."""
        for term in _check_phrases(value, "prohibited"):
            if not any(char.isalnum() for char in skeleton(term)):
                raise ValueError(f"prohibited term {term!r} has no letters or digits")
        return value

    @field_validator("required")
    @classmethod
    def _required_not_blank(cls, value: list[str]) -> list[str]:
        return _check_phrases(value, "required")

    @field_validator("language")
    @classmethod
    def _iso_639_1(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().lower()
        if not ISO_639_1.match(code):
            raise ValueError(f"language {value!r} is not an ISO 639-1 code such as 'en'")
        return code

    @model_validator(mode="after")
    def _satisfiable(self) -> TextPolicy:
        """``min_chars > max_chars`` would reject every text, repairably, forever."""
        if (
            self.min_chars is not None
            and self.max_chars is not None
            and self.min_chars > self.max_chars
        ):
            raise ValueError(f"min_chars {self.min_chars} is above max_chars {self.max_chars}")
        return self


# --- judge -------------------------------------------------------------------------------------


class JudgePolicy(BaseModel):
    """How one brand's assets are judged; ``provider`` names a provider of the routing file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = Field(min_length=1, description="Provider name from the routing file.")
    model: str = Field(min_length=1, description="Model id sent on the wire (pin a version).")
    rubric: str = Field(min_length=1, description="What a good asset is, in plain words.")
    kinds: list[AssetKind] = Field(
        default_factory=lambda: [AssetKind.TEXT, AssetKind.IMAGE],
        description="Asset kinds the judge looks at; the caller skips the others.",
    )
    timeout_s: float = Field(
        20.0, gt=0, description="Bound on the whole judge call, its retries included."
    )
    max_retries: int = Field(
        2,
        ge=0,
        description="Retries of a retryable failure (a 5xx, a 429) through the model router, "
        "with its backoff, within timeout_s.",
    )
    max_output_tokens: int = Field(400, ge=1)
    min_score: float = Field(
        0.0, ge=0, le=1, description="A 'pass' scored below this fails (repairable)."
    )
    price: Price = Field(default_factory=Price, description="Prices the judge call's usage.")
    when: Literal["always", "if_passed"] = Field(
        "if_passed",
        description="'if_passed': only judge assets the deterministic checks passed, so no "
        "money is spent on an asset that is rejected anyway.",
    )
    sentiment: bool = Field(
        False,
        description="Also ask the judge how positive a TEXT asset's copy reads (-1 to 1): its "
        "score replaces the lexicon's in text.sentiment (the stamped score and "
        "text.min_sentiment); when it gives none or fails, the lexicon's score counts.",
    )

    @model_validator(mode="after")
    def _sentiment_needs_text(self) -> JudgePolicy:
        if self.sentiment and AssetKind.TEXT not in self.kinds:
            raise ValueError("judge.sentiment scores copy: the judge's kinds must include TEXT")
        return self
