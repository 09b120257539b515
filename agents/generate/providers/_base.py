"""The provider interface: one method, so any model backend plugs in behind it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from streams.records import GenerationRequest


@dataclass(frozen=True)
class Generated:
    """What a provider returns: the asset bytes and how they were made."""

    data: bytes
    media_type: str
    provider: str
    model_version: str
    cost: float = 0.0
    usage: Mapping[str, int] = field(default_factory=dict)


class ProviderError(Exception):
    """A provider could not produce the asset; ``code`` is stable and goes into events."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class Provider(Protocol):
    """Generates one asset for one request.

    Raise :class:`ProviderError` for anything the request or the provider got wrong; the
    generate stage turns it into a FAILED completion, never a crash.
    """

    name: str

    async def generate(self, request: GenerationRequest) -> Generated: ...
