"""The offline default provider: deterministic assets with no network, key or model weights."""

from agents.inference.providers.offline.code import CODE_MEDIA_TYPES, render_code
from agents.inference.providers.offline.image import IMAGE_MEDIA_TYPES, render_image
from agents.inference.providers.offline.json_document import render_json
from agents.inference.providers.offline.provider import OfflineProvider, content_seed
from agents.inference.providers.offline.text import render_copy

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
