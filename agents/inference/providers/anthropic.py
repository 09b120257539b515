"""Adapter for Anthropic's Messages API: text, JSON and code (Claude makes no images).

Claude does read images: a call's image attachments go into the user turn as base64 blocks.

The API has no JSON mode, so for JSON the schema goes into the system prompt and the validate
stage checks the result like any other provider's.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Final, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, SecretStr

from agents.inference.providers._content import instructions, media_type, strip_fence
from agents.inference.providers._http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    PooledAdapter,
    bad_response,
    lookup,
    optional_int,
    post_json,
    reported_model,
)
from agents.inference.providers.base import (
    Attachment,
    Generated,
    ProviderCall,
    ProviderError,
    Usage,
)
from schemas.records import AssetKind

__all__ = ["AnthropicConfig", "AnthropicProvider", "message_generated", "messages_body"]

#: ``max_tokens`` is mandatory in the Messages API; this applies when routing sets none.
DEFAULT_MAX_TOKENS: Final = 1024


class AnthropicConfig(BaseModel):
    """The Anthropic endpoint, as written in the routing config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["anthropic"] = "anthropic"
    base_url: str = "https://api.anthropic.com"
    api_version: str = Field("2023-06-01", description="Sent as anthropic-version.")
    max_response_bytes: PositiveInt = DEFAULT_MAX_RESPONSE_BYTES
    extra_headers: dict[str, str] = Field(default_factory=dict)


class AnthropicProvider(PooledAdapter):
    """Generates TEXT, JSON and CODE assets with Claude models."""

    def __init__(
        self,
        name: str,
        config: AnthropicConfig,
        api_key: SecretStr | None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._url = config.base_url.rstrip("/") + "/v1/messages"
        key = api_key.get_secret_value() if api_key is not None else ""
        super().__init__(client, key, config.extra_headers.values())
        headers = {
            "Accept": "application/json",
            **config.extra_headers,
            "anthropic-version": config.api_version,
        }
        if key:
            headers["x-api-key"] = key
        self._headers: Mapping[str, str] = headers

    async def generate(self, call: ProviderCall) -> Generated:
        body = messages_body(call, self.name)
        payload = await post_json(
            self._client,
            self._url,
            body,
            provider=self.name,
            timeout_s=call.timeout_s,
            headers=self._headers,
            max_bytes=self.config.max_response_bytes,
            secrets=self._secrets,
        )
        return message_generated(payload, call, self.name)


def messages_body(call: ProviderCall, provider: str) -> dict[str, Any]:
    """The Messages API body for one call (also a batch request's ``params``)."""
    request = call.request
    if request.kind is AssetKind.IMAGE:
        raise ProviderError("provider.unsupported", f"{provider}: cannot make images")
    body: dict[str, Any] = {
        "model": call.model,
        "max_tokens": call.max_output_tokens or DEFAULT_MAX_TOKENS,
        "system": instructions(request, schema_in_prompt=True),
        "messages": [{"role": "user", "content": _user_content(call, provider)}],
    }
    body.update(call.params)
    return body


def message_generated(payload: Mapping[str, Any], call: ProviderCall, provider: str) -> Generated:
    """The asset in a Messages API answer (also a succeeded batch result's ``message``), or
    the :class:`ProviderError` it amounts to (refusal, no text)."""
    request = call.request
    usage = Usage(
        input_tokens=optional_int(payload, "usage.input_tokens"),
        output_tokens=optional_int(payload, "usage.output_tokens"),
    )
    if payload.get("stop_reason") == "refusal":
        raise ProviderError(
            "provider.refused", f"{provider}: model refused", refusal=True, usage=usage
        )
    blocks = lookup(payload, "content", provider)
    if not isinstance(blocks, list):
        raise bad_response(provider, "'content' is not a list")
    text = "".join(
        block["text"]
        for block in blocks
        if isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    )
    if not text.strip():
        raise bad_response(provider, "no text in 'content'")
    if request.kind in (AssetKind.JSON, AssetKind.CODE):
        text = strip_fence(text)
    return Generated(
        data=text.encode("utf-8"),
        media_type=media_type(request),
        provider=provider,
        model_version=reported_model(payload.get("model"), call.model),
        usage=usage,
    )


def _user_content(call: ProviderCall, provider: str) -> str | list[dict[str, Any]]:
    """The prompt as is, or image blocks then a text block (Claude reads images best first)."""
    if not call.attachments:
        return call.prompt
    return [
        *(_image_block(attachment, provider) for attachment in call.attachments),
        {"type": "text", "text": call.prompt},
    ]


def _image_block(attachment: Attachment, provider: str) -> dict[str, Any]:
    if not attachment.is_image:
        raise ProviderError(
            "provider.unsupported",
            f"{provider}: cannot send a {attachment.bare_media_type!r} attachment, only images",
        )
    return {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": attachment.bare_media_type,
            "data": base64.b64encode(attachment.data).decode("ascii"),
        },
    }
