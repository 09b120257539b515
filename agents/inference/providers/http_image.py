"""Adapter for any HTTP image endpoint (self-hosted diffusion servers, vendor APIs), by config.

The request is a JSON body template and the answer is either the image itself or base64 at a
path in a JSON body, so a new backend is a routing-config entry, not a code change.

Placeholders are ``${name}``. In ``body``: ``prompt``, ``model``, ``width``, ``height``,
``format``, ``seed``, ``request_id``; in ``headers``: ``api_key`` and ``request_id``. A string
that is exactly one placeholder takes the variable's JSON type (``"${width}"`` becomes ``512``),
and is left out of its object when the request does not set the variable, so the endpoint's own
default applies. An unset variable inside a longer string is a ``provider.bad_constraints``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, SecretStr, model_validator

from agents.inference.providers._content import check_image_size, sniff_image
from agents.inference.providers._http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    PooledAdapter,
    bad_response,
    lookup,
    parse_json,
    send,
)
from agents.inference.providers.base import Generated, ProviderCall, ProviderError, Usage
from agents.inference.providers.offline import content_seed
from schemas.records import AssetKind

__all__ = ["Base64JsonResponse", "BytesResponse", "HttpImageConfig", "HttpImageProvider"]

BODY_VARIABLES: Final = frozenset(
    {"prompt", "model", "width", "height", "format", "seed", "request_id"}
)
HEADER_VARIABLES: Final = frozenset({"api_key", "request_id"})
_NUMERIC: Final = frozenset({"width", "height", "seed"})
_PLACEHOLDER: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: Seeds fit a signed 32-bit int: the widest type every diffusion server accepts.
_SEED_MASK: Final = 0x7FFF_FFFF
_DATA_URL: Final = re.compile(r"\Adata:([\w.+-]+/[\w.+-]+)?(;[^,]*)?,")


class _Omit:
    """Marks a template value whose variable is unset: the key is dropped."""


_OMIT: Final = _Omit()


class BytesResponse(BaseModel):
    """The response body is the image."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["bytes"] = "bytes"


class Base64JsonResponse(BaseModel):
    """The response is JSON with the base64 image at a dotted ``path`` (``images.0``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["base64_json"] = "base64_json"
    path: str = Field(min_length=1)


class HttpImageConfig(BaseModel):
    """A templated image endpoint, as written in the routing config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["http_image"] = "http_image"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] = Field(default_factory=dict)
    response: Annotated[BytesResponse | Base64JsonResponse, Field(discriminator="kind")] = (
        BytesResponse()
    )
    refusal_statuses: frozenset[int] = frozenset({451})
    max_response_bytes: PositiveInt = DEFAULT_MAX_RESPONSE_BYTES

    @model_validator(mode="after")
    def _known_placeholders(self) -> HttpImageConfig:
        """Catch typos at startup, not as odd request bodies at the first call."""
        for where, template, allowed in (
            ("headers", self.headers, HEADER_VARIABLES),
            ("body", self.body, BODY_VARIABLES),
        ):
            unknown = _placeholders(template) - allowed
            if unknown:
                raise ValueError(
                    f"unknown placeholder(s) in {where}: {', '.join(sorted(unknown))} "
                    f"(allowed: {', '.join(sorted(allowed))})"
                )
        return self

    @property
    def needs_api_key(self) -> bool:
        return "api_key" in _placeholders(self.headers)


class HttpImageProvider(PooledAdapter):
    """Generates IMAGE assets by filling the configured request template."""

    def __init__(
        self,
        name: str,
        config: HttpImageConfig,
        api_key: SecretStr | None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        key = api_key.get_secret_value() if api_key is not None else ""
        if config.needs_api_key and not key:
            raise ValueError(f"provider {name!r}: headers use ${{api_key}} but no key is set")
        super().__init__(client, key, config.headers.values())
        self.name = name
        self.config = config
        self._api_key = key

    async def generate(self, call: ProviderCall) -> Generated:
        request = call.request
        if request.kind is not AssetKind.IMAGE:
            raise ProviderError("provider.unsupported", f"{self.name}: makes only images")
        check_image_size(request, self.name)
        constraints = request.constraints
        body_variables: dict[str, str | int | None] = {
            "prompt": call.prompt,
            "model": call.model,
            "width": constraints.width,
            "height": constraints.height,
            "format": constraints.format,
            "seed": content_seed(request, call.model) & _SEED_MASK,
            "request_id": request.request_id,
        }
        header_variables: dict[str, str | int | None] = {
            "api_key": self._api_key,
            "request_id": request.request_id,
        }
        headers = {
            key: str(value)
            for key, value in _fill(self.config.headers, header_variables, self.name).items()
        }
        result = await send(
            self._client,
            "POST",
            self.config.url,
            provider=self.name,
            timeout_s=call.timeout_s,
            headers=headers,
            json_body=_fill(self.config.body, body_variables, self.name),
            max_bytes=self.config.max_response_bytes,
            secrets=self._secrets,
            is_refusal=lambda status, _body: status in self.config.refusal_statuses,
        )
        data, declared = self._image(result.content, result.headers)
        detected = sniff_image(data) or declared
        if detected is None:
            raise bad_response(self.name, "body is not a PNG, JPEG or WebP image")
        return Generated(
            data=data,
            media_type=detected,
            provider=self.name,
            model_version=call.model,
            usage=Usage(images=1),
        )

    def _image(self, content: bytes, headers: httpx.Headers) -> tuple[bytes, str | None]:
        """The image bytes and the media type the response declares for them, if any."""
        if isinstance(self.config.response, BytesResponse):
            declared = headers.get("content-type", "").split(";")[0].strip().lower()
            return content, declared if declared.startswith("image/") else None
        value = lookup(parse_json(content, self.name), self.config.response.path, self.name)
        if not isinstance(value, str):
            raise bad_response(self.name, f"{self.config.response.path!r} is not a string")
        declared_type: str | None = None
        match = _DATA_URL.match(value)
        if match:
            declared_type = match.group(1)
            value = value[match.end() :]
        try:
            data = base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise bad_response(self.name, "image is not valid base64") from exc
        if declared_type is not None and not declared_type.startswith("image/"):
            declared_type = None
        return data, declared_type


def _placeholders(template: Any) -> set[str]:
    if isinstance(template, str):
        return set(_PLACEHOLDER.findall(template))
    if isinstance(template, Mapping):
        return set().union(*(_placeholders(value) for value in template.values()))
    if isinstance(template, list):
        return set().union(*(_placeholders(value) for value in template))
    return set()


def _fill(template: Any, variables: Mapping[str, str | int | None], provider: str) -> Any:
    """``template`` with placeholders replaced (see the module docstring for the rules)."""
    if isinstance(template, Mapping):
        filled = {key: _fill(value, variables, provider) for key, value in template.items()}
        return {key: value for key, value in filled.items() if value is not _OMIT}
    if isinstance(template, list):
        return [
            None if (value := _fill(item, variables, provider)) is _OMIT else value
            for item in template
        ]
    if not isinstance(template, str):
        return template
    whole = _PLACEHOLDER.fullmatch(template)
    if whole:
        value = variables[whole.group(1)]
        return _OMIT if value is None else value

    def substitute(match: re.Match[str]) -> str:
        value = variables[match.group(1)]
        if value is None:
            raise ProviderError(
                "provider.bad_constraints",
                f"{provider}: the request template needs {match.group(1)!r}, "
                "which the request does not set",
            )
        return str(value)

    return _PLACEHOLDER.sub(substitute, template)
