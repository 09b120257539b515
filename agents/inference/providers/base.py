"""The provider interface: one method, so any model backend plugs in behind it.

Routing (which provider, which pinned model, retries, budgets) lives in
:mod:`agents.inference.routing`; a provider only turns one :class:`ProviderCall` into bytes or a
:class:`ProviderError` that says how the router may react (retry, fail over, or stop).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas.errors import AssetlineError
from schemas.records import GenerationRequest


@dataclass(frozen=True)
class Usage:
    """What one call consumed, read from the provider's response; priced by the router."""

    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.images + other.images,
        )


@dataclass(frozen=True)
class Attachment:
    """Bytes sent to the model beside the prompt, e.g. the image an AI validator judges.

    Adapters send what their API can take (images, for now) and raise
    ``provider.unsupported`` for the rest rather than let the model answer without it.
    """

    data: bytes
    media_type: str

    @property
    def bare_media_type(self) -> str:
        """The media type without parameters, lower-cased: what the vendor APIs match on."""
        return self.media_type.split(";", 1)[0].strip().lower()

    @property
    def is_image(self) -> bool:
        return self.bare_media_type.startswith("image/")


@dataclass(frozen=True)
class ProviderCall:
    """One attempt against one provider: the request plus what routing decided for it.

    ``model`` is sent on the wire exactly as given: the pinned version when the routing entry
    has one, so a request never silently moves to a newer snapshot. ``attachments`` go into
    the user message beside ``prompt`` (chat models only).
    """

    request: GenerationRequest
    prompt: str
    model: str
    timeout_s: float = 60.0
    max_output_tokens: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class Generated:
    """What a provider returns: the asset bytes and how they were made."""

    data: bytes
    media_type: str
    provider: str
    model_version: str
    usage: Usage = field(default_factory=Usage)


class ProviderError(AssetlineError):
    """A provider could not produce the asset; ``code`` is stable and goes into events.

    - ``retryable``: the same call may succeed later (429, 5xx, timeouts, broken responses);
    - ``refusal``: the provider refused the content (policy); final for the request, the router
      never routes around it;
    - ``retry_after_s``: the provider's own ``Retry-After``, honoured by the router;
    - ``usage``: what the failed call still consumed (billed tokens), so cost sums every attempt.

    Messages must never contain credentials: adapters build them from response bodies and
    status lines only.
    """

    code = "provider.error"

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        refusal: bool = False,
        retry_after_s: float | None = None,
        status: int | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.refusal = refusal
        self.retry_after_s = retry_after_s
        self.status = status
        self.usage = usage or Usage()


class Provider(Protocol):
    """Generates one asset for one call.

    Raise :class:`ProviderError` for anything the request or the provider got wrong; the
    router turns it into a retry, a failover or a FAILED completion, never a crash.
    """

    name: str

    async def generate(self, call: ProviderCall) -> Generated: ...
