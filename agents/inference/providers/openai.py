"""Adapter for OpenAI-compatible servers: OpenAI itself, vLLM, Ollama, llama.cpp, LocalAI.

Text, JSON and code go to ``/chat/completions``, images to ``/images/generations``; the model
id is sent exactly as routing pinned it, and the config's ``params`` (temperature, quality...)
are merged into the body last, so an operator can reach any vendor knob without code changes.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from typing import Any, Final, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, SecretStr

from agents.egress.pinning import PinnedTransport
from agents.egress.ssrf import Resolver, system_resolver
from agents.inference.providers._content import (
    check_image_size,
    instructions,
    media_type,
    sniff_image,
    strip_fence,
)
from agents.inference.providers._fetch import fetch_result
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
from streams.redaction import redact_and_truncate

__all__ = ["OpenAIConfig", "OpenAIProvider", "chat_body", "chat_generated"]

#: Error ``type``/``code`` fragments OpenAI-style servers use for policy rejections.
_POLICY_MARKERS: Final = ("content_policy", "content_filter", "moderation", "safety")
_REFUSAL_CHARS: Final = 300


class OpenAIConfig(BaseModel):
    """One OpenAI-compatible endpoint, as written in the routing config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["openai"] = "openai"
    base_url: str = Field("https://api.openai.com/v1", description="Up to and including /v1.")
    organization: str | None = Field(None, description="Sent as OpenAI-Organization.")
    image_size: str = Field(
        "1024x1024", description="Image size when the request does not set width and height."
    )
    image_response_format: Literal["b64_json", "url"] | None = Field(
        "b64_json", description="None omits the field (gpt-image-1 rejects it)."
    )
    max_response_bytes: PositiveInt = DEFAULT_MAX_RESPONSE_BYTES
    extra_headers: dict[str, str] = Field(default_factory=dict)
    result_url_allow: tuple[str, ...] = Field(
        (),
        description="Hosts, IPs or CIDRs an image result URL may point at although private "
        "(a self-hosted server's own file host); everything else private is refused.",
    )


class OpenAIProvider(PooledAdapter):
    """Generates every asset kind through one OpenAI-compatible endpoint."""

    def __init__(
        self,
        name: str,
        config: OpenAIConfig,
        api_key: SecretStr | None,
        client: httpx.AsyncClient | None = None,
        *,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.name = name
        self.config = config
        self._base_url = config.base_url.rstrip("/")
        # result URLs go through the SSRF guard and a transport pinned to what it approved
        self._results = PinnedTransport(max_pools=8, keepalive_expiry=5.0)
        self._resolver = resolver
        key = api_key.get_secret_value() if api_key is not None else ""
        super().__init__(client, key, config.extra_headers.values())
        headers = {"Accept": "application/json", **config.extra_headers}
        if config.organization:
            headers["OpenAI-Organization"] = config.organization
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._headers: Mapping[str, str] = headers

    async def aclose(self) -> None:
        await self._results.aclose()
        await super().aclose()

    async def generate(self, call: ProviderCall) -> Generated:
        if call.request.kind is AssetKind.IMAGE:
            return await self._image(call)
        return await self._chat(call)

    async def _chat(self, call: ProviderCall) -> Generated:
        body = chat_body(call, self.name)
        payload = await self._post("/chat/completions", body, call.timeout_s)
        return chat_generated(payload, call, self.name, self._secrets)

    async def _image(self, call: ProviderCall) -> Generated:
        if call.attachments:  # /images/generations takes a prompt only; never drop them silently
            raise ProviderError(
                "provider.unsupported", f"{self.name}: image generation takes no attachments"
            )
        check_image_size(call.request, self.name)
        started = time.monotonic()
        constraints = call.request.constraints
        size = (
            f"{constraints.width}x{constraints.height}"
            if constraints.width is not None and constraints.height is not None
            else self.config.image_size
        )
        body: dict[str, Any] = {"model": call.model, "prompt": call.prompt, "n": 1, "size": size}
        if self.config.image_response_format is not None:
            body["response_format"] = self.config.image_response_format
        body.update(call.params)
        payload = await self._post("/images/generations", body, call.timeout_s)
        images = lookup(payload, "data", self.name)
        if not isinstance(images, list) or not images or not isinstance(images[0], dict):
            raise bad_response(self.name, "'data' holds no image")
        first = images[0]
        if isinstance(first.get("b64_json"), str):
            data = _decode_base64(first["b64_json"], self.name)
        elif isinstance(first.get("url"), str):
            remaining = call.timeout_s - (time.monotonic() - started)
            data = await self._download(first["url"], remaining)
        else:
            raise bad_response(self.name, "data[0] has neither 'b64_json' nor 'url'")
        detected = sniff_image(data)
        if detected is None:
            raise bad_response(self.name, "image is not PNG, JPEG or WebP")
        return Generated(
            data=data,
            media_type=detected,
            provider=self.name,
            model_version=_model_version(payload, call.model),
            usage=Usage(
                input_tokens=optional_int(payload, "usage.input_tokens"),
                output_tokens=optional_int(payload, "usage.output_tokens"),
                images=len(images),
            ),
        )

    async def _post(self, path: str, body: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        return await post_json(
            self._client,
            self._base_url + path,
            body,
            provider=self.name,
            timeout_s=timeout_s,
            headers=self._headers,
            max_bytes=self.config.max_response_bytes,
            secrets=self._secrets,
            is_refusal=_is_policy_refusal,
        )

    async def _download(self, url: str, timeout_s: float) -> bytes:
        """Fetch a result URL with no credentials, as an untrusted destination (see _fetch)."""
        if not url.startswith(("https://", "http://")):
            raise bad_response(self.name, "image URL is not http(s)")
        if timeout_s <= 0:
            raise ProviderError(
                "provider.timeout", f"{self.name}: no time left to fetch the image", retryable=True
            )
        return await fetch_result(
            self._results,
            url,
            provider=self.name,
            timeout_s=timeout_s,
            max_bytes=self.config.max_response_bytes,
            allow=self.config.result_url_allow,
            resolver=self._resolver,
        )


def chat_body(call: ProviderCall, provider: str) -> dict[str, Any]:
    """The ``/chat/completions`` body for a text, JSON or code call (also one line of a batch)."""
    request = call.request
    # A plain string unless there are attachments: some compatible servers take only that.
    user: str | list[dict[str, Any]] = call.prompt
    if call.attachments:
        user = [
            {"type": "text", "text": call.prompt},
            *(_image_part(attachment, provider) for attachment in call.attachments),
        ]
    body: dict[str, Any] = {
        "model": call.model,
        "messages": [
            {"role": "system", "content": instructions(request)},
            {"role": "user", "content": user},
        ],
    }
    # Newer models take max_completion_tokens instead; a config that sets it wins.
    if call.max_output_tokens is not None and "max_completion_tokens" not in call.params:
        body["max_tokens"] = call.max_output_tokens
    if request.kind is AssetKind.JSON:
        body["response_format"] = _json_format(request.constraints.json_schema, provider)
    body.update(call.params)
    return body


def chat_generated(
    payload: Mapping[str, Any], call: ProviderCall, provider: str, secrets: tuple[str, ...]
) -> Generated:
    """The asset in a ``/chat/completions`` answer (also a batch output line's body), or the
    :class:`ProviderError` it amounts to (refusal, empty content)."""
    request = call.request
    usage = Usage(
        input_tokens=optional_int(payload, "usage.prompt_tokens"),
        output_tokens=optional_int(payload, "usage.completion_tokens"),
    )
    message = lookup(payload, "choices.0.message", provider)
    if not isinstance(message, dict):
        raise bad_response(provider, "choices[0].message is not an object")
    refusal = message.get("refusal")
    finish_reason = lookup(payload, "choices.0", provider).get("finish_reason")
    if refusal or finish_reason == "content_filter":
        reason = refusal if isinstance(refusal, str) else "content filter"
        raise ProviderError(
            "provider.refused",
            f"{provider}: model refused: " + redact_and_truncate(reason, secrets, _REFUSAL_CHARS),
            refusal=True,
            usage=usage,
        )
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        raise bad_response(provider, "choices[0].message.content is empty")
    if request.kind in (AssetKind.JSON, AssetKind.CODE):
        content = strip_fence(content)
    return Generated(
        data=content.encode("utf-8"),
        media_type=media_type(request),
        provider=provider,
        model_version=_model_version(payload, call.model),
        usage=usage,
    )


def _json_format(schema_text: str | None, provider: str) -> dict[str, Any]:
    if schema_text is None:
        return {"type": "json_object"}
    try:
        schema = json.loads(schema_text)
    except ValueError as exc:
        raise ProviderError(
            "provider.bad_constraints", f"{provider}: json_schema is not valid JSON: {exc}"
        ) from exc
    return {
        "type": "json_schema",
        "json_schema": {"name": "asset", "schema": schema, "strict": True},
    }


def _image_part(attachment: Attachment, provider: str) -> dict[str, Any]:
    """An ``image_url`` content part carrying the bytes inline as a data URI."""
    if not attachment.is_image:
        raise ProviderError(
            "provider.unsupported",
            f"{provider}: cannot send a {attachment.bare_media_type!r} attachment, only images",
        )
    encoded = base64.b64encode(attachment.data).decode("ascii")
    return {
        "type": "image_url",
        "image_url": {"url": f"data:{attachment.bare_media_type};base64,{encoded}"},
    }


def _is_policy_refusal(status: int, body: Any) -> bool:
    """A 400 whose error type or code names a content policy (moderation, safety...)."""
    if status != 400 or not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return False
    error = body["error"]
    labels = " ".join(str(error.get(key) or "") for key in ("type", "code")).lower()
    return any(marker in labels for marker in _POLICY_MARKERS)


def _decode_base64(text: str, provider: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_response(provider, "b64_json is not valid base64") from exc


def _model_version(payload: Mapping[str, Any], requested: str) -> str:
    return reported_model(payload.get("model"), requested)
