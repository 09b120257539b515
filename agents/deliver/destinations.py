"""Where each tenant's and campaign's assets go: named destinations and routing rules.

One YAML or TOML file (``ASSETLINE_DESTINATIONS_FILE``), validated when the worker starts.
Credentials are never in the file: a destination names a secret, and the value comes from
``ASSETLINE_API_KEYS`` (a JSON object of name -> secret). Without a file, everything goes to
the filesystem under ``ASSETLINE_DELIVERY_DIR``, as before.

    destinations:
      local:  {type: filesystem, root: /srv/assets}
      bucket: {type: s3, endpoint_url: "https://s3.eu-west-1.amazonaws.com", bucket: acme-assets,
               region: eu-west-1, access_key_id: AKIA..., secret: s3-acme}
      dam:    {type: http, url: "https://dam.example.com/api/{tenant}/{campaign_id}/{name}",
               auth_header: Authorization, secret: dam-token}
      mailchimp: {type: api, url: "https://us1.api.mailchimp.com/3.0/file-manager/files",
                  fields: {name: "{name}", file_data: "{file_base64}", folder_id: 0},
                  auth: {type: basic}, secret: mailchimp-key,
                  location: full_size_url, external_ids: {mailchimp_file_id: id}}
    default: local
    routes:
      - {tenant: acme, destination: bucket}
      - {tenant: acme, campaign_id: spring-sale, destination: dam}
    retry: {attempts: 5, base_delay_s: 0.5, max_delay_s: 30}

Any destination may set ``max_in_flight``: how many deliveries to it run at once (default: the
``deliver_destination_concurrency`` setting). Deliveries run concurrently, each destination in
its own lane, so a slow or dead destination holds back only the assets routed to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from agents.deliver.sinks import FilesystemSink, Sink
from agents.deliver.sinks.api import ApiAuth, ApiSink, ApiSinkConfig
from agents.deliver.sinks.http import HttpSink, HttpSinkConfig
from agents.deliver.sinks.s3 import S3Config, S3Sink
from streams.config_files import (
    CONFIG_SUFFIXES,
    ConfigError,
    parse_config_text,
    read_config_text,
    validation_summary,
)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Destination(_Strict):
    #: Deliveries to this destination at once; None = deliver_destination_concurrency.
    max_in_flight: int | None = Field(None, ge=1, le=10_000)


class FilesystemDestination(_Destination):
    type: Literal["filesystem"] = "filesystem"
    root: Path


class S3Destination(_Destination):
    """An S3 bucket (or any S3-compatible store); ``secret`` names the secret access key."""

    type: Literal["s3"] = "s3"
    endpoint_url: str
    bucket: str
    region: str = "us-east-1"
    prefix: str = ""
    access_key_id: str
    secret: str
    addressing: Literal["path", "virtual"] = "path"
    timeout_s: float = Field(30.0, gt=0)


class HttpDestination(_Destination):
    """A DAM/CMS endpoint; ``secret`` names the value of ``auth_header``."""

    type: Literal["http"] = "http"
    url: str
    method: Literal["PUT", "POST"] = "PUT"
    auth_header: str | None = None
    secret: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(30.0, gt=0)


class ApiDestination(_Destination):
    """A content API (email platforms): templated body, ``secret`` sent as ``auth`` says.

    See :mod:`agents.deliver.sinks.api` and examples/destinations/ (Mailchimp, Klaviyo).
    """

    type: Literal["api"] = "api"
    url: str
    method: Literal["POST", "PUT"] = "POST"
    body: Literal["json", "multipart"] = "json"
    fields: dict[str, Any] = Field(default_factory=dict)
    file_field: str = "file"
    headers: dict[str, str] = Field(default_factory=dict)
    auth: ApiAuth | None = None
    secret: str | None = None
    location: str | None = None
    external_ids: dict[str, str] = Field(default_factory=dict)
    sidecars: bool = False
    allow: tuple[str, ...] = ()
    timeout_s: float = Field(30.0, gt=0)
    max_response_bytes: int = Field(1024 * 1024, ge=1024)


Destination = Annotated[
    FilesystemDestination | S3Destination | HttpDestination | ApiDestination,
    Field(discriminator="type"),
]


class Route(_Strict):
    """Assets of ``tenant`` (and ``campaign_id``, when given) go to ``destination``."""

    tenant: str | None = None
    campaign_id: str | None = None
    destination: str

    @model_validator(mode="after")
    def _matches_something(self) -> Route:
        if self.tenant is None and self.campaign_id is None:
            raise ValueError("a route needs a tenant, a campaign_id, or both (use 'default')")
        return self


class WebhookRoute(_Strict):
    """Completions of ``tenant``/``campaign_id`` (either may be left out) are posted to ``url``.

    ``secret`` names the signing secret; unset means the line's default (webhook_secret_name).
    """

    tenant: str | None = None
    campaign_id: str | None = None
    url: str
    secret: str | None = None


class RetryPolicy(_Strict):
    """How often a failing destination is retried before the asset is dead-lettered."""

    attempts: int = Field(4, ge=1, le=20)
    base_delay_s: float = Field(0.5, ge=0)
    max_delay_s: float = Field(30.0, ge=0)


class DestinationsConfig(_Strict):
    destinations: dict[str, Destination]
    default: str
    routes: list[Route] = Field(default_factory=list)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    webhooks: list[WebhookRoute] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_names(self) -> DestinationsConfig:
        named = {self.default, *(route.destination for route in self.routes)}
        unknown = sorted(named - set(self.destinations))
        if unknown:
            raise ValueError(
                f"unknown destination(s) {unknown}; defined: {sorted(self.destinations)}"
            )
        return self


class DestinationsFileError(ConfigError):
    """The destinations file is missing, malformed, or names a secret that is not set."""

    code = "config.destinations_file"


@dataclass(frozen=True)
class Destinations:
    """Built sinks and the routing rules, resolved per asset."""

    sinks: Mapping[str, Sink]
    default: str
    routes: tuple[Route, ...]
    retry: RetryPolicy
    webhooks: tuple[WebhookRoute, ...] = ()
    #: name -> deliveries at once, for the destinations that set ``max_in_flight``.
    max_in_flight: Mapping[str, int] = field(default_factory=dict)

    def in_flight_limit(self, name: str, default: int) -> int:
        """How many deliveries to destination ``name`` may run at once."""
        return self.max_in_flight.get(name, default)

    def name_for(self, tenant: str, campaign_id: str) -> str:
        """The most specific matching route wins: tenant + campaign, then one of them."""
        best: tuple[int, str] | None = None
        for route in self.routes:
            if route.tenant not in (None, tenant) or route.campaign_id not in (None, campaign_id):
                continue
            score = (route.tenant is not None) + (route.campaign_id is not None)
            if best is None or score > best[0]:
                best = (score, route.destination)
        return best[1] if best is not None else self.default

    def webhooks_for(self, tenant: str, campaign_id: str) -> list[WebhookRoute]:
        """Every campaign/tenant webhook that matches (all of them fire, not the nearest)."""
        return [
            hook
            for hook in self.webhooks
            if hook.tenant in (None, tenant) and hook.campaign_id in (None, campaign_id)
        ]


def _secret(name: str | None, secrets: Mapping[str, SecretStr], where: str) -> SecretStr | None:
    if name is None:
        return None
    if name not in secrets:
        raise DestinationsFileError(
            f"destination {where!r} needs secret {name!r}: set it in ASSETLINE_API_KEYS "
            "(a JSON object of name -> secret)"
        )
    return secrets[name]


def build_sink(name: str, spec: Destination, secrets: Mapping[str, SecretStr]) -> Sink:
    if isinstance(spec, FilesystemDestination):
        return FilesystemSink(spec.root)
    if isinstance(spec, S3Destination):
        secret = _secret(spec.secret, secrets, name)
        fields = spec.model_dump(exclude={"type", "secret", "max_in_flight"})
        # One pooled client per destination: a new connection per asset costs ~10x the write.
        return S3Sink(S3Config(**fields, secret_access_key=secret), httpx.AsyncClient())
    if isinstance(spec, ApiDestination):
        fields = spec.model_dump(exclude={"type", "secret", "max_in_flight"})
        try:
            config = ApiSinkConfig(**fields, secret=_secret(spec.secret, secrets, name))
        except ValidationError as exc:
            raise DestinationsFileError(validation_summary(exc, f"destination {name!r}")) from None
        return ApiSink(config)
    auth = _secret(spec.secret, secrets, name)
    fields = spec.model_dump(exclude={"type", "secret", "max_in_flight"})
    return HttpSink(HttpSinkConfig(**fields, auth_value=auth), httpx.AsyncClient())


def parse_destinations(data: Any, source: str) -> DestinationsConfig:
    try:
        return DestinationsConfig.model_validate(data)
    except ValidationError as exc:
        raise DestinationsFileError(validation_summary(exc, source)) from None


def load_destinations(
    path: Path | None, secrets: Mapping[str, SecretStr], delivery_dir: Path
) -> Destinations:
    """The configured destinations, or the filesystem under ``delivery_dir`` without a file."""
    if path is None:
        config = DestinationsConfig(
            destinations={"filesystem": FilesystemDestination(root=delivery_dir)},
            default="filesystem",
        )
    else:
        suffix = path.suffix.lower()
        try:  # the safe reader: no YAML aliases, no duplicate keys, bounded size
            text = read_config_text(path)
            data = parse_config_text(
                text, suffix if suffix in CONFIG_SUFFIXES else ".yaml", str(path)
            )
        except ConfigError as exc:
            raise DestinationsFileError(str(exc)) from None
        config = parse_destinations(data, str(path))
    sinks = {name: build_sink(name, spec, secrets) for name, spec in config.destinations.items()}
    limits = {
        name: spec.max_in_flight
        for name, spec in config.destinations.items()
        if spec.max_in_flight is not None
    }
    return Destinations(
        sinks, config.default, tuple(config.routes), config.retry, tuple(config.webhooks), limits
    )
