"""Caps on an asset's size per kind, held at every step: generated, stored and validated.

A request can ask for a huge asset (a JSON Schema with ``minItems: 9000`` of 100,000-character
strings is a 900 MB document); the caps make such a request end as ``asset.too_large`` long
before the worker builds, stores or parses anything that large.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from streams.records import AssetKind

if TYPE_CHECKING:
    from streams.settings import Settings

ASSET_TOO_LARGE: Final = "asset.too_large"
MIB: Final = 1024 * 1024


@dataclass(frozen=True)
class AssetLimits:
    """Largest asset, in bytes, of each kind (defaults match the settings' defaults)."""

    text: int = 2 * MIB
    json: int = 2 * MIB
    code: int = 2 * MIB
    image: int = 64 * MIB

    @classmethod
    def from_settings(cls, settings: Settings) -> AssetLimits:
        return cls(
            text=settings.max_text_bytes,
            json=settings.max_json_bytes,
            code=settings.max_code_bytes,
            image=settings.max_image_bytes,
        )

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
