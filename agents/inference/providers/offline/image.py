"""Deterministic offline pictures: a seeded gradient, a few shapes and the request's text.

Speed comes from drawing in palette mode ("P"): one byte per pixel instead of three, and Pillow
does not run PNG row filters on palette images, so encoding a 512x512 PNG takes ~0.4 ms instead
of ~3.7 ms for the same picture in RGB (about 2 ms per render in all, text included).

The palette is laid out so that even palette-mode text is antialiased: each text colour sits at
the end of a ramp that starts at the panel colour, and Pillow blends index values, so a
half-covered pixel lands on the half-way colour of the ramp.
"""

from __future__ import annotations

import io
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageDraw, ImageFont

from agents.inference.providers.base import ProviderError
from agents.inference.providers.offline.text import fill_prompt

__all__ = ["IMAGE_MEDIA_TYPES", "PNG_COMPRESS_LEVEL", "normalize_format", "render_image"]

RGB = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

#: Canonical format name -> media type.
IMAGE_MEDIA_TYPES: Final[Mapping[str, str]] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}
_FORMAT_ALIASES: Final[Mapping[str, str]] = {"jpg": "jpeg"}

#: zlib level for PNG. Measured on a drawn 512x512 palette image (median of 50 encodes):
#: level 0 takes 0.14 ms but stores 264 KB; 1 takes 0.36 ms for 10.7 KB; 3 takes 0.44 ms for
#: 9.3 KB; 6 takes 1.2 ms for 7.9 KB; 9 takes 6.4 ms for 7.2 KB. Flat-colour art compresses well
#: at any level, so the cheapest real compression wins; the cost grows with the pixel count.
PNG_COMPRESS_LEVEL: Final = 1
_JPEG_QUALITY: Final = 85
_WEBP_QUALITY: Final = 80
#: libwebp effort 0..6: encoding a 512x512 takes ~2.9 ms at 0, 4.2 ms at 2, 10 ms at 4 for files
#: only 5-25 % smaller, so the fastest wins here too.
_WEBP_METHOD: Final = 0

# Palette layout (indices): the background ramp, the shape colours, and the two text ramps that
# share the panel colour at _PANEL so antialiased text blends towards the right colour.
_RAMP_SIZE: Final = 192
_ACCENT: Final = 192
_HEADLINE: Final = 200
_PANEL: Final = 215
_SUBLINE: Final = 230
_ELLIPSIS: Final = "\u2026"


@dataclass(frozen=True)
class _Theme:
    """A named look: gradient stops, three shape colours, and the text panel's colours."""

    stops: tuple[RGB, RGB, RGB]
    accents: tuple[RGB, RGB, RGB]
    panel: RGB
    headline: RGB
    subline: RGB


_THEMES: Final[tuple[_Theme, ...]] = (
    _Theme(
        ((30, 60, 140), (200, 80, 120), (250, 200, 90)),
        ((240, 120, 60), (255, 255, 255), (40, 200, 180)),
        (20, 20, 30),
        (255, 255, 255),
        (190, 190, 205),
    ),
    _Theme(
        ((10, 90, 80), (60, 170, 120), (220, 240, 170)),
        ((250, 230, 90), (20, 40, 60), (240, 110, 90)),
        (245, 245, 235),
        (20, 40, 50),
        (90, 110, 110),
    ),
    _Theme(
        ((60, 20, 90), (150, 50, 160), (255, 140, 120)),
        ((255, 220, 120), (70, 210, 230), (255, 255, 255)),
        (25, 10, 40),
        (255, 240, 220),
        (200, 170, 210),
    ),
    _Theme(
        ((230, 90, 40), (245, 170, 60), (255, 235, 170)),
        ((40, 60, 120), (255, 255, 255), (180, 30, 60)),
        (40, 30, 30),
        (255, 250, 240),
        (230, 190, 150),
    ),
    _Theme(
        ((15, 30, 60), (30, 90, 160), (120, 200, 240)),
        ((255, 200, 60), (230, 80, 100), (200, 240, 255)),
        (250, 250, 255),
        (15, 30, 60),
        (70, 90, 130),
    ),
    _Theme(
        ((240, 240, 235), (200, 210, 220), (150, 170, 190)),
        ((230, 60, 70), (40, 50, 70), (250, 180, 40)),
        (35, 45, 60),
        (255, 255, 255),
        (180, 190, 205),
    ),
    _Theme(
        ((90, 10, 30), (190, 40, 60), (250, 150, 110)),
        ((255, 230, 200), (30, 30, 40), (250, 200, 80)),
        (255, 245, 235),
        (90, 10, 30),
        (140, 90, 90),
    ),
    _Theme(
        ((20, 50, 30), (90, 120, 40), (210, 200, 110)),
        ((250, 250, 240), (200, 80, 40), (40, 70, 90)),
        (20, 30, 20),
        (245, 240, 210),
        (180, 190, 150),
    ),
)


def _lerp(a: RGB, b: RGB, t: float) -> list[int]:
    return [round(a[i] + (b[i] - a[i]) * t) for i in range(3)]


def _ramp(stops: Sequence[RGB], size: int) -> list[int]:
    """``size`` colours evenly through ``stops``, flattened to r, g, b, r, g, b, ..."""
    flat: list[int] = []
    for index in range(size):
        position = index / (size - 1) * (len(stops) - 1)
        segment = min(int(position), len(stops) - 2)
        flat += _lerp(stops[segment], stops[segment + 1], position - segment)
    return flat


def _palette(theme: _Theme, reverse: bool) -> bytes:
    stops = theme.stops[::-1] if reverse else theme.stops
    flat = _ramp(stops, _RAMP_SIZE)
    for index in range(_ACCENT, _HEADLINE):
        flat += theme.accents[(index - _ACCENT) % len(theme.accents)]
    flat += _ramp((theme.headline, theme.panel), _PANEL - _HEADLINE + 1)
    flat += _ramp((theme.panel, theme.subline), _SUBLINE - _PANEL + 1)[3:]
    flat += [0] * (768 - len(flat))
    return bytes(flat)


#: Built once at import: (theme, reversed) -> 768-byte palette.
_PALETTES: Final[tuple[bytes, ...]] = tuple(
    _palette(theme, reverse) for theme in _THEMES for reverse in (False, True)
)

#: 2x2 corner values of the background ramp index, one per gradient direction.
_DIRECTIONS: Final[tuple[tuple[int, int, int, int], ...]] = (
    (0, 0, _RAMP_SIZE - 1, _RAMP_SIZE - 1),  # top to bottom
    (0, _RAMP_SIZE - 1, 0, _RAMP_SIZE - 1),  # left to right
    (0, _RAMP_SIZE // 2, _RAMP_SIZE // 2, _RAMP_SIZE - 1),  # diagonal
    (_RAMP_SIZE // 2, 0, _RAMP_SIZE - 1, _RAMP_SIZE // 2),  # anti-diagonal
)


def normalize_format(fmt: str | None) -> str:
    """'png', 'jpeg' or 'webp' from any accepted spelling (unset means png)."""
    name = "png" if fmt is None else fmt.strip().lower()
    name = _FORMAT_ALIASES.get(name, name)
    if name not in IMAGE_MEDIA_TYPES:
        raise ProviderError(
            "provider.bad_constraints",
            f"unsupported image format {fmt!r} (supported: png, jpeg, jpg, webp)",
        )
    return name


def _background(width: int, height: int, corners: tuple[int, int, int, int]) -> Image.Image:
    """A full-bleed gradient of ramp indices: bilinear upscaling of a 2x2 image.

    The box spans pixel centre to pixel centre, so the ramp runs edge to edge instead of being
    clamped flat in the outer quarters.
    """
    corner_image = Image.frombytes("L", (2, 2), bytes(corners))
    return corner_image.resize((width, height), Image.Resampling.BILINEAR, box=(0.5, 0.5, 1.5, 1.5))


def _shapes(draw: ImageDraw.ImageDraw, width: int, height: int, rng: random.Random) -> None:
    """A circle, a triangle and a row of dots: few, large primitives are cheap to fill."""
    side = min(width, height)
    radius = side * (0.12 + 0.14 * rng.random())
    cx, cy = width * (0.2 + 0.6 * rng.random()), height * (0.15 + 0.3 * rng.random())
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=_ACCENT)
    triangle = [
        (width * rng.random(), height * 0.6 * rng.random()),
        (width * rng.random(), height * 0.6 * rng.random()),
        (width * rng.random(), height * 0.6 * rng.random()),
    ]
    draw.polygon(triangle, fill=_ACCENT + 1)
    dot = max(1.0, side * 0.02)
    y = height * (0.05 + 0.5 * rng.random())
    x0 = width * 0.05 + dot
    for index in range(5):
        x = x0 + index * dot * 3
        draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=_ACCENT + 2)


def _font(size: int) -> Font:
    """Pillow's bundled font (no font files to fetch); bitmap fallback without FreeType."""
    return ImageFont.load_default(size=size)


def _fit(text: str, font: Font, width: float) -> str:
    """``text``, or its longest prefix plus an ellipsis that fits ``width``.

    The cut goes at the last word boundary when there is one, so no word is shown half.
    """
    if font.getlength(text) <= width:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if font.getlength(text[:middle].rstrip() + _ELLIPSIS) <= width:
            low = middle
        else:
            high = middle - 1
    cut = text[:low]
    if low < len(text) and not text[low].isspace() and " " in cut.strip():
        cut = cut[: cut.rstrip().rfind(" ")]
    cut = cut.rstrip(" ,;:-")
    return cut + _ELLIPSIS if cut else ""


def _wrap(text: str, font: Font, width: float, max_lines: int) -> list[str]:
    """Greedy word wrap into at most ``max_lines``; the last line ends in an ellipsis if cut."""
    lines: list[str] = []
    words = text.split()
    while words and len(lines) < max_lines:
        line = words.pop(0)
        while words and font.getlength(f"{line} {words[0]}") <= width:
            line = f"{line} {words.pop(0)}"
        if words and len(lines) == max_lines - 1:
            line = f"{line} {' '.join(words)}"
            words = []
        lines.append(_fit(line, font, width))
    return [line for line in lines if line]


def _panel_text(
    draw: ImageDraw.ImageDraw, width: int, height: int, headline: str, subline: str
) -> None:
    """A solid panel at the bottom with the headline and persona/locale line inside it."""
    left, right = round(width * 0.05), round(width * 0.95)
    top, bottom = round(height * 0.66), round(height * 0.95)
    draw.rectangle((left, top, right, bottom), fill=_PANEL)
    head_size = round(min(height * 0.06, width * 0.07))
    if head_size < 6:  # unreadable, and a tiny image has no room for it anyway
        return
    sub_size = max(6, round(head_size * 0.6))
    pad = head_size * 0.5
    text_width = right - left - 2 * pad
    room = bottom - top - 2 * pad
    head_font, sub_font = _font(head_size), _font(sub_size)
    sub_height = sub_size * 1.3 if subline else 0.0
    max_lines = max(0, min(3, int((room - sub_height) // (head_size * 1.25))))
    y = top + pad
    for line in _wrap(headline, head_font, text_width, max_lines):
        draw.text((left + pad, y), line, font=head_font, fill=_HEADLINE)
        y += head_size * 1.25
    if subline and y + sub_size * 1.3 <= bottom - pad * 0.5:
        draw.text(
            (left + pad, y), _fit(subline, sub_font, text_width), font=sub_font, fill=_SUBLINE
        )


def _encode(image: Image.Image, fmt: str) -> bytes:
    """Encode once; lossy formats need RGB, PNG keeps the compact palette image."""
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    elif fmt == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=_JPEG_QUALITY)
    else:
        image.convert("RGB").save(buffer, "WEBP", quality=_WEBP_QUALITY, method=_WEBP_METHOD)
    return buffer.getvalue()


def render_image(
    prompt: str, variables: Mapping[str, str], width: int, height: int, fmt: str, seed: int
) -> bytes:
    """A ``width`` x ``height`` picture in ``fmt`` (png, jpeg/jpg, webp; any case).

    ``prompt`` is the template: its ``${name}`` placeholders are filled from ``variables``. The
    headline is ``variables["headline"]`` or else the filled prompt; persona and locale go on a
    second line. Only ``seed`` decides colours and layout, so equal inputs give equal bytes.
    """
    name = normalize_format(fmt)
    if width < 1 or height < 1:
        raise ProviderError(
            "provider.bad_constraints", f"image size must be positive, got {width}x{height}"
        )
    rng = random.Random(seed)  # noqa: S311 - layout, not security; must be reproducible
    image = _background(width, height, _DIRECTIONS[seed % len(_DIRECTIONS)])
    image.putpalette(_PALETTES[(seed >> 4) % len(_PALETTES)])
    draw = ImageDraw.Draw(image)
    draw.fontmode = "L"  # Pillow picks "1" for palette images; the ramps make "L" correct
    _shapes(draw, width, height, rng)
    headline = " ".join((variables.get("headline") or fill_prompt(prompt, variables)).split())
    subline = " \u00b7 ".join(
        value for key in ("persona", "locale") if (value := variables.get(key, "").strip())
    )
    _panel_text(draw, width, height, headline, subline)
    return _encode(image, name)
