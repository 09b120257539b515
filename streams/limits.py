"""Caps on an asset's size per kind, held at every step: generated, stored and validated.

A request can ask for a huge asset (a JSON Schema with ``minItems: 9000`` of 100,000-character
strings is a 900 MB document); the caps make such a request end as ``asset.too_large`` long
before the worker builds, stores or parses anything that large.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from schemas.records import AssetKind

if TYPE_CHECKING:
    from streams.settings import Settings

ASSET_TOO_LARGE: Final = "asset.too_large"
#: An IMAGE request whose width/height is not positive or exceeds the pixel/side caps.
BAD_IMAGE_SIZE: Final = "request.bad_image_size"
MIB: Final = 1024 * 1024


@dataclass(frozen=True)
class AssetLimits:
    """Largest asset, in bytes, of each kind (defaults match the settings' defaults)."""

    text: int = 2 * MIB
    json: int = 2 * MIB
    code: int = 2 * MIB
    image: int = 64 * MIB
    image_pixels: int = 40_000_000
    image_side: int = 8192

    @classmethod
    def from_settings(cls, settings: Settings) -> AssetLimits:
        return cls(
            text=settings.max_text_bytes,
            json=settings.max_json_bytes,
            code=settings.max_code_bytes,
            image=settings.max_image_bytes,
            image_pixels=settings.max_image_pixels,
            image_side=settings.max_image_side,
        )

    def image_size_refusal(self, width: int | None, height: int | None) -> str | None:
        """Why a requested image size is refused before any provider sees it, else ``None``.

        Providers take the size as given (``http_image`` forwards it verbatim), so a request
        for 2147483647 x -7 pixels must stop here. An unset side is the provider's default.
        """
        sides = (("width", width), ("height", height))
        for name, side in sides:
            if side is not None and side < 1:
                return f"image {name} must be at least 1 pixel, got {side}"
        for name, side in sides:
            if side is not None and side > self.image_side:
                return f"image {name} {side} exceeds the largest side allowed ({self.image_side})"
        if width is not None and height is not None and width * height > self.image_pixels:
            return f"image of {width}x{height} pixels exceeds the pixel cap ({self.image_pixels})"
        return None

    def for_kind(self, kind: AssetKind) -> int:
        return {
            AssetKind.TEXT: self.text,
            AssetKind.JSON: self.json,
            AssetKind.CODE: self.code,
            AssetKind.IMAGE: self.image,
        }[kind]

    def refusal(self, kind: AssetKind, size: int) -> str | None:
        """Why an asset of ``size`` bytes is refused, or ``None`` when it is within the cap."""
        cap = self.for_kind(kind)
        if size <= cap:
            return None
        return f"{kind.value} asset of {size} bytes exceeds the cap of {cap} bytes"
