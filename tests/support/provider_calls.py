"""Builders for the :class:`ProviderCall` objects adapter tests send."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.inference.providers.base import ProviderCall
from schemas.records import AssetKind, Constraints, GenerationRequest

__all__ = ["make_call"]


def make_call(
    kind: AssetKind = AssetKind.TEXT,
    *,
    prompt: str = "Write a headline for trail runners",
    model: str = "test-model-2024-01-01",
    timeout_s: float = 5.0,
    max_output_tokens: int | None = None,
    params: Mapping[str, Any] | None = None,
    request_id: str = "req-1",
    **constraints: Any,
) -> ProviderCall:
    """A call for one request of ``kind``; keyword arguments become its constraints."""
    request = GenerationRequest(
        request_id=request_id,
        idempotency_key=f"idem-{request_id}",
        tenant="acme",
        campaign_id="spring",
        kind=kind,
        prompt_template=prompt,
        constraints=Constraints(**constraints),
    )
    return ProviderCall(
        request=request,
        prompt=prompt,
        model=model,
        timeout_s=timeout_s,
        max_output_tokens=max_output_tokens,
        params=dict(params or {}),
    )
