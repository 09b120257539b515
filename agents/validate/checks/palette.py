"""Brand palette check: most of the image should be close (CIEDE2000) to a brand colour.

Comparing every pixel would cost far more than the line's per-asset budget, so the image is
sampled down to a small square, quantised to a few dominant colours, and only those colours are
compared with the brand's. sRGB -> CIELAB (D65) comes from ``coloraide``. The CIEDE2000 formula
itself is written out here on plain floats: through coloraide's ``Color`` objects each ΔE costs
~37 µs (parsing, cloning, converting), which made it three quarters of the check's time, while
the arithmetic is ~3 µs. CIEDE2000 is easy to get subtly wrong, so the tests hold this function
to Sharma, Wu & Dalal's published pairs and to coloraide's own result on random colours.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar, Final

from coloraide import Color
from PIL import Image

from agents.policy.rules import HEX_COLOR, PalettePolicy
from agents.validate.checks._base import Subject
from agents.validate.checks.image import (
    DEFAULT_MAX_FRAMES,
    ImageProbe,
    ImageProber,
    alpha_extrema,
    not_decoded_result,
    to_rgba,
)
from schemas.records import AssetKind, CheckResult

_IMAGE: Final = frozenset({AssetKind.IMAGE})

#: Pixels less than half opaque count as transparent: their stored colour barely shows.
VISIBLE_ALPHA: Final = 128

RGB = tuple[int, int, int]
Lab = tuple[float, float, float]


def hex_to_rgb(color: str) -> RGB:
    """``"#ff8800"`` -> ``(255, 136, 0)``."""
    if not HEX_COLOR.match(color):
        raise ValueError(f"{color!r} is not a '#RRGGBB' colour")
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def rgb_to_hex(rgb: RGB) -> str:
    """``(255, 136, 0)`` -> ``"#ff8800"``."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@lru_cache(maxsize=16_384)
def srgb_to_lab(rgb: RGB) -> Lab:
    """8-bit sRGB -> CIELAB under D65, the space CIEDE2000 is defined in.

    Cached: quantised colours repeat across a campaign's images, and 16k entries are ~2 MB.
    """
    lab = Color("srgb", [channel / 255 for channel in rgb]).convert("lab-d65")
    lightness, a, b = lab.coords(nans=False)
    return lightness, a, b


_POW25_7: Final = 25.0**7


def delta_e_2000(lab1: Lab, lab2: Lab) -> float:
    """CIEDE2000 colour difference (kL = kC = kH = 1) between two CIELAB colours.

    Sharma, Wu & Dalal (2005), equations 1-23, including their notes on hue angles of
    achromatic colours and the mean hue across the 0/360 boundary.
    """
    l1, a1, b1 = lab1
    l2, a2, b2 = lab2
    c_bar = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2.0
    c_bar7 = c_bar**7
    g = 0.5 * (1.0 - math.sqrt(c_bar7 / (c_bar7 + _POW25_7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360.0 if c1p else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360.0 if c2p else 0.0

    dl = l2 - l1
    dc = c2p - c1p
    if c1p * c2p == 0.0:
        dh = 0.0
    else:
        dh = h2p - h1p
        if dh > 180.0:
            dh -= 360.0
        elif dh < -180.0:
            dh += 360.0
    dhh = 2.0 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh / 2.0))

    l_bar = (l1 + l2) / 2.0
    cp_bar = (c1p + c2p) / 2.0
    if c1p * c2p == 0.0:
        hp_bar = h1p + h2p
    elif abs(h1p - h2p) <= 180.0:
        hp_bar = (h1p + h2p) / 2.0
    elif h1p + h2p < 360.0:
        hp_bar = (h1p + h2p + 360.0) / 2.0
    else:
        hp_bar = (h1p + h2p - 360.0) / 2.0

    t = (
        1.0
        - 0.17 * math.cos(math.radians(hp_bar - 30.0))
        + 0.24 * math.cos(math.radians(2.0 * hp_bar))
        + 0.32 * math.cos(math.radians(3.0 * hp_bar + 6.0))
        - 0.20 * math.cos(math.radians(4.0 * hp_bar - 63.0))
    )
    d_theta = 30.0 * math.exp(-(((hp_bar - 275.0) / 25.0) ** 2))
    cp_bar7 = cp_bar**7
    r_c = 2.0 * math.sqrt(cp_bar7 / (cp_bar7 + _POW25_7))
    l50 = (l_bar - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / math.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * cp_bar
    s_h = 1.0 + 0.015 * cp_bar * t
    r_t = -math.sin(math.radians(2.0 * d_theta)) * r_c
    tl, tc, th = dl / s_l, dc / s_c, dhh / s_h
    return math.sqrt(tl * tl + tc * tc + th * th + r_t * tc * th)


def _sample(image: Image.Image, side: int) -> Image.Image:
    """At most ``side`` x ``side``, keeping the aspect; nearest-neighbour, because it is cheap
    and an unbiased sample: blending edges would invent colours the image does not show."""
    width, height = image.size
    if max(width, height) <= side:
        return image
    scale = side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.NEAREST)


def _visible_rgb(image: Image.Image, ignore_transparent: bool) -> Image.Image | None:
    """The pixels to count, as an RGB image; None when every one is transparent."""
    if not (ignore_transparent and image.has_transparency_data):
        return image if image.mode == "RGB" else to_rgba(image).convert("RGB")
    rgba = to_rgba(image)
    extrema = alpha_extrema(rgba)
    if extrema is None or extrema[0] >= VISIBLE_ALPHA:
        return rgba.convert("RGB")
    raw = rgba.tobytes()
    kept = bytearray()
    for alpha_at in range(3, len(raw), 4):
        if raw[alpha_at] >= VISIBLE_ALPHA:
            kept += raw[alpha_at - 3 : alpha_at]
    if not kept:
        return None
    return Image.frombytes("RGB", (len(kept) // 3, 1), bytes(kept))


def _dominant_counts(
    image: Image.Image, n: int, side: int, ignore_transparent: bool
) -> tuple[list[tuple[RGB, int]], int]:
    """Dominant colours with pixel counts (largest first) and the number of pixels counted."""
    if n < 1 or side < 1:
        raise ValueError(f"n and side must be positive, got n={n}, side={side}")
    pixels = _visible_rgb(_sample(image, side), ignore_transparent)
    if pixels is None:
        return [], 0
    quantized = pixels.quantize(colors=n, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    counts: dict[RGB, int] = {}
    for index, count in enumerate(quantized.histogram()):
        if count:
            red, green, blue = palette[3 * index : 3 * index + 3]
            counts[red, green, blue] = counts.get((red, green, blue), 0) + count
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked, sum(counts.values())


def dominant_colors(
    image: Image.Image, n: int, side: int, *, ignore_transparent: bool = True
) -> list[tuple[RGB, float]]:
    """Up to ``n`` dominant colours and their pixel shares (largest first, summing to 1).

    The image is sampled down to at most ``side`` x ``side`` and median-cut quantised; pixels
    less than half opaque are left out when ``ignore_transparent``. Empty when none is left.
    """
    ranked, total = _dominant_counts(image, n, side, ignore_transparent)
    return [(rgb, count / total) for rgb, count in ranked]


@dataclass(frozen=True)
class _Match:
    rgb: RGB
    count: int
    nearest: str
    delta_e: float


@dataclass(frozen=True)
class BrandPalette:
    """``palette.brand``: ``min_share`` of the pixels or more within ``max_delta_e`` of the brand.

    The brand colours' Lab values are computed once, when the check is built.
    """

    policy: PalettePolicy
    prober: ImageProber = field(default_factory=ImageProber)
    code: ClassVar[str] = "palette.brand"
    kinds: ClassVar[frozenset[AssetKind]] = _IMAGE
    _brand: tuple[tuple[str, Lab], ...] = field(init=False, repr=False, compare=False)
    _unusable: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A policy built without validation (model_construct) must still fail as a result.
        try:
            brand = tuple((c.lower(), srgb_to_lab(hex_to_rgb(c))) for c in self.policy.colors)
            unusable = None if brand else "no brand colours"
        except ValueError as exc:
            brand, unusable = (), str(exc)
        object.__setattr__(self, "_brand", brand)
        object.__setattr__(self, "_unusable", unusable)

    def __call__(self, subject: Subject) -> CheckResult:
        if self._unusable is not None:
            return CheckResult(
                code=self.code, passed=False, message=f"unusable palette policy: {self._unusable}"
            )
        probe = self.prober(subject.data)
        if probe.image is None:
            return not_decoded_result(self.code, probe)
        if probe.frames > 1:
            return self._every_frame(subject.data, probe)
        return self._judge(probe.image)

    def _every_frame(self, data: bytes, probe: ImageProbe) -> CheckResult:
        """An animation passes only if every frame does; the worst frame is reported.

        Frames are decoded one at a time from a fresh reader (the probe's image is shared and
        must not be seeked), within the same pixel budget as one still image and at most
        :data:`DEFAULT_MAX_FRAMES` frames.
        """
        pixels = (probe.width or 0) * (probe.height or 0) * probe.frames
        if probe.frames > DEFAULT_MAX_FRAMES or pixels > self.prober.max_pixels:
            return CheckResult(
                code=self.code,
                passed=False,
                message=f"{probe.frames} frames of {probe.dimensions} are too many to check "
                f"(at most {DEFAULT_MAX_FRAMES} frames, {self.prober.max_pixels} pixels in all)",
                measured=str(probe.frames),
                repairable=True,
            )
        worst: tuple[float, int, CheckResult] | None = None
        with Image.open(io.BytesIO(data), formats=[probe.format or ""]) as image:
            for index in range(probe.frames):
                image.seek(index)
                verdict = self._judge(image.convert("RGBA"))
                share = float(verdict.measured) if verdict.measured is not None else -1.0
                if worst is None or share < worst[0]:
                    worst = (share, index, verdict)
        assert worst is not None
        _, index, verdict = worst
        where = f"frame {index + 1} of {probe.frames} (the worst): "
        return verdict.model_copy(update={"message": where + verdict.message})

    def _judge(self, image: Image.Image) -> CheckResult:
        p = self.policy
        ranked, total = _dominant_counts(
            image, p.quantize_colors, p.sample_side, p.ignore_transparent
        )
        if total == 0:
            return CheckResult(
                code=self.code,
                passed=False,
                message="no visible pixels to compare with the palette: all are transparent",
                repairable=True,
            )
        matches = [self._nearest(rgb, count) for rgb, count in ranked]
        on_brand = sum(m.count for m in matches if m.delta_e <= p.max_delta_e) / total
        measured = f"{on_brand:.3f}"
        summary = (
            f"{on_brand:.1%} of pixels within ΔE {p.max_delta_e:g} of the brand palette "
            f"(need {p.min_share:.1%})"
        )
        if on_brand >= p.min_share:
            return CheckResult(code=self.code, passed=True, message=summary, measured=measured)
        offending = ", ".join(
            f"{rgb_to_hex(m.rgb)} {m.count / total:.1%} (nearest {m.nearest}, ΔE {m.delta_e:.1f})"
            for m in matches
            if m.delta_e > p.max_delta_e
        )
        return CheckResult(
            code=self.code,
            passed=False,
            message=f"only {summary}; off-palette: {offending}",
            measured=measured,
            repairable=True,
        )

    def _nearest(self, rgb: RGB, count: int) -> _Match:
        lab = srgb_to_lab(rgb)
        distance, nearest = min(
            (delta_e_2000(lab, brand_lab), name) for name, brand_lab in self._brand
        )
        return _Match(rgb, count, nearest, distance)
