"""The asset an alias delivers, labelled FALLBACK, when every provider in its chain failed.

Fallback files are read once when the worker starts: a missing file fails the start, not the
request that needed it during an outage.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path

from agents.inference.prompt import render_prompt
from agents.inference.providers.base import Generated, ProviderCall
from agents.inference.providers.offline import OfflineProvider
from agents.inference.providers.offline.provider import DEFAULT_VERSION
from agents.inference.routing.config import Fallback, RoutingConfig
from schemas.records import GenerationRequest
from streams.config_files import ConfigError

#: Provider name recorded on fallback assets, so no one mistakes one for a model's output.
FALLBACK_PROVIDER = "fallback"

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
)


def sniff_media_type(data: bytes, name: str) -> str:
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


#: A fallback is one cached asset held in memory; anything bigger is a mistake (or /dev/zero).
MAX_FALLBACK_BYTES = 64 << 20


def _read_fallback(alias: str, path: Path) -> bytes:
    """The file's bytes, or a one-line :class:`ConfigError` that fails the worker's start."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FALLBACK_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"{path}: fallback file of alias {alias!r} cannot be read: {exc.strerror or exc}"
        ) from None
    if len(data) > MAX_FALLBACK_BYTES:
        raise ConfigError(
            f"{path}: fallback file of alias {alias!r} is larger than {MAX_FALLBACK_BYTES} bytes"
        )
    return data


@dataclass(frozen=True)
class _Cached:
    data: bytes
    media_type: str
    label: str


class FallbackAssets:
    def __init__(self, config: RoutingConfig, offline: OfflineProvider) -> None:
        self._offline = offline
        self._files: dict[str, _Cached] = {}
        for name, alias in config.aliases.items():
            fallback = alias.fallback
            if fallback is None or fallback.file is None:
                continue
            data = _read_fallback(name, fallback.file)
            media_type = fallback.media_type or sniff_media_type(data, fallback.file.name)
            self._files[name] = _Cached(data, media_type, f"file:{fallback.file.name}")

    async def render(self, alias: str, fallback: Fallback, request: GenerationRequest) -> Generated:
        """Bytes for the request; a placeholder honours the request's size and format."""
        if fallback.file is not None:
            cached = self._files[alias]
            return Generated(cached.data, cached.media_type, FALLBACK_PROVIDER, cached.label)
        if fallback.text is not None:
            media_type = fallback.media_type or "text/plain; charset=utf-8"
            return Generated(fallback.text.encode("utf-8"), media_type, FALLBACK_PROVIDER, "text")
        call = ProviderCall(request, render_prompt(request), DEFAULT_VERSION)
        rendered = await self._offline.generate(call)
        return Generated(rendered.data, rendered.media_type, FALLBACK_PROVIDER, "placeholder")
