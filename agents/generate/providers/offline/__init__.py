"""The offline default provider: deterministic assets with no network, key or model weights."""

from agents.generate.providers.offline.image import IMAGE_MEDIA_TYPES, render_image
from agents.generate.providers.offline.provider import OfflineProvider, content_seed
from agents.generate.providers.offline.text import (
    CODE_MEDIA_TYPES,
    render_code,
    render_copy,
    render_json,
)

__all__ = [
    "CODE_MEDIA_TYPES",
    "IMAGE_MEDIA_TYPES",
    "OfflineProvider",
    "content_seed",
    "render_code",
    "render_copy",
    "render_image",
    "render_json",
]
