"""The offline provider: the line's default backend, needing no network, API key or weights.

Output depends only on the request's content (kind, prompt template, variables, constraints and
model version), never on its id, timestamps or attempt: the same creative asked twice yields the
same bytes, so the content-addressed blob store deduplicates it and tests can pin results.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Final

from agents.inference.providers.base import Generated, ProviderCall, ProviderError, Usage
from agents.inference.providers.offline.code import (
    CODE_MEDIA_TYPES,
    canonical_language,
    render_code,
)
from agents.inference.providers.offline.image import (
    IMAGE_MEDIA_TYPES,
    normalize_format,
    render_image,
)
from agents.inference.providers.offline.json_document import render_json
from agents.inference.providers.offline.text import render_copy
from schemas.records import AssetKind, GenerationRequest
from streams.limits import ASSET_TOO_LARGE, AssetLimits

__all__ = ["DEFAULT_VERSION", "OfflineProvider", "content_seed"]

DEFAULT_VERSION: Final = "offline-1"
_VERSION_PREFIX: Final = "offline-"
_DEFAULT_SIDE: Final = 512
_TEXT_MEDIA_TYPE: Final = "text/plain; charset=utf-8"
_JSON_MEDIA_TYPE: Final = "application/json"

#: A rendering job: runs off the event loop, returns the bytes and the usage to report.
_Job = Callable[[], tuple[bytes, Usage]]


def content_seed(request: GenerationRequest, model_version: str) -> int:
    """64-bit seed from the content fields only (see the module docstring for why).

    Unset constraints are left out, so adding an optional constraint field to the contract
    later does not change the bytes of every existing request.
    """
    content: dict[str, object] = {
        "kind": request.kind.value,
        "prompt_template": request.prompt_template,
        "variables": request.variables,
        "constraints": request.constraints.model_dump(mode="json", exclude_none=True),
        "model_version": model_version,
    }
    if request.feedback:  # a re-generation must be able to come out differently
        content["feedback"] = request.feedback
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(canonical.encode("utf-8")).digest()[:8], "big")


def _bad(message: str) -> ProviderError:
    return ProviderError("provider.bad_constraints", message)


def _text_job(text: Callable[[], str]) -> _Job:
    def job() -> tuple[bytes, Usage]:
        return text().encode("utf-8"), Usage()

    return job


class OfflineProvider:
    """Deterministic images (Pillow), copy, JSON and code, rendered in a worker thread.

    Requests are checked on the event loop before any work is scheduled, so a bad request fails
    in microseconds; rendering is CPU-bound and runs in ``executor`` (default: asyncio's
    thread pool) so the loop keeps serving Kafka meanwhile.
    """

    name: str = "offline"

    def __init__(
        self,
        *,
        max_pixels: int = 40_000_000,
        max_side: int = 8192,
        executor: Executor | None = None,
        limits: AssetLimits | None = None,
    ) -> None:
        if max_pixels < 1 or max_side < 1:
            raise ValueError("max_pixels and max_side must be positive")
        self.max_pixels = max_pixels
        self.max_side = max_side
        self.limits = limits or AssetLimits()
        self._executor = executor

    async def generate(self, call: ProviderCall) -> Generated:
        request = call.request
        version = self._version(call.model)
        media_type, job = self._plan(request, content_seed(request, version))
        data, usage = await self._run(job)
        refusal = self.limits.refusal(request.kind, len(data))
        if refusal is not None:  # the JSON builder stops early; this holds for every kind
            raise ProviderError(ASSET_TOO_LARGE, refusal)
        return Generated(
            data=data, media_type=media_type, provider=self.name, model_version=version, usage=usage
        )

    @staticmethod
    def _version(version: str) -> str:
        """The model id sent by routing: 'offline' means the default version."""
        if version in ("", "offline"):
            return DEFAULT_VERSION
        if not version.startswith(_VERSION_PREFIX) or version == _VERSION_PREFIX:
            raise ProviderError(
                "provider.unknown_version",
                f"offline provider has no model version {version!r} "
                f"(versions start with {_VERSION_PREFIX!r}, default {DEFAULT_VERSION!r})",
            )
        return version

    def _plan(self, request: GenerationRequest, seed: int) -> tuple[str, _Job]:
        """Validate the request and return its media type and rendering job."""
        prompt, variables, constraints = (
            request.prompt_template,
            request.variables,
            request.constraints,
        )
        if request.kind is AssetKind.IMAGE:
            fmt = normalize_format(constraints.format)
            width, height = self._size(constraints.width, constraints.height)

            def image_job() -> tuple[bytes, Usage]:
                try:
                    data = render_image(prompt, variables, width, height, fmt, seed)
                except (OSError, ValueError) as exc:  # encoder limits; a retry would fail again
                    raise ProviderError(
                        "provider.render_failed", f"could not render {fmt} image: {exc}"
                    ) from exc
                return data, Usage(images=1)

            return IMAGE_MEDIA_TYPES[fmt], image_job
        if request.kind is AssetKind.TEXT:
            max_chars = constraints.max_chars
            if max_chars is not None and max_chars < 1:
                raise _bad(f"max_chars must be at least 1, got {max_chars}")
            locale = variables.get("locale") or constraints.language
            return _TEXT_MEDIA_TYPE, _text_job(
                lambda: render_copy(prompt, variables, max_chars, seed, locale)
            )
        if request.kind is AssetKind.JSON:
            schema, cap = constraints.json_schema, self.limits.json
            return _JSON_MEDIA_TYPE, _text_job(
                lambda: render_json(prompt, variables, schema, seed, max_bytes=cap)
            )
        if request.kind is AssetKind.CODE:
            language = canonical_language(constraints.language)
            return CODE_MEDIA_TYPES[language], _text_job(
                lambda: render_code(prompt, variables, language, seed)
            )
        raise ProviderError("provider.unsupported", f"offline provider cannot make {request.kind}")

    def _size(self, width: int | None, height: int | None) -> tuple[int, int]:
        """Requested size (each side defaults to 512) within the configured limits."""
        width = _DEFAULT_SIDE if width is None else width
        height = _DEFAULT_SIDE if height is None else height
        if width < 1 or height < 1:
            raise _bad(f"image size must be positive, got {width}x{height}")
        if max(width, height) > self.max_side:
            raise _bad(f"image side {max(width, height)} exceeds max_side {self.max_side}")
        if width * height > self.max_pixels:
            raise _bad(f"image {width}x{height} exceeds max_pixels {self.max_pixels}")
        return width, height

    async def _run(self, job: _Job) -> tuple[bytes, Usage]:
        if self._executor is None:
            return await asyncio.to_thread(job)
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)
