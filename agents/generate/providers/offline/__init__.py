"""The offline default provider: deterministic assets with no network, key or model weights."""

from agents.generate.providers.offline.code import CODE_MEDIA_TYPES, render_code
from agents.generate.providers.offline.image import IMAGE_MEDIA_TYPES, render_image
from agents.generate.providers.offline.json_document import render_json
from agents.generate.providers.offline.provider import OfflineProvider, content_seed
from agents.generate.providers.offline.text import render_copy

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
