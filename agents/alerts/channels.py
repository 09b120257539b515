"""The alert channels file: where notices go, from which severity, with which secret.

Secrets are named, never written in the file: ``routing_key``, ``url_secret`` and ``secret``
are names in ``api_keys`` (a Slack webhook URL is itself a credential, so it can come from
there too). Read through the project's safe config reader (:mod:`streams.config_files`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from agents.alerts.grouping import Severity
from streams.config_files import ConfigError, parse_config_model, read_config_text


class ChannelsFileError(ConfigError):
    """The channels file cannot be used; one line, never a secret."""

    code = "alerts.bad_channels_file"


class ChannelType(StrEnum):
    SLACK = "slack"
    PAGERDUTY = "pagerduty"
    WEBHOOK = "webhook"


SeverityName = Literal["info", "warning", "error", "critical"]


class ChannelSpec(BaseModel):
    """One channel as written in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    type: ChannelType
    url: str | None = Field(None, description="Endpoint; or url_secret when the URL is a secret.")
    url_secret: str | None = Field(None, description="Name in api_keys holding the URL.")
    routing_key: str | None = Field(None, description="PagerDuty: name in api_keys of the key.")
    secret: str | None = Field(None, description="Webhook: name in api_keys of whsec_ secret.")
    min_severity: SeverityName = "warning"
    source: str = Field("assetline", max_length=255, description="PagerDuty payload.source.")

    @model_validator(mode="after")
    def _complete(self) -> ChannelSpec:
        if (self.url is None) == (self.url_secret is None):
            raise ValueError(f"channel {self.name!r}: give exactly one of url and url_secret")
        if self.url is not None and not self.url.startswith(("https://", "http://")):
            raise ValueError(f"channel {self.name!r}: url must be http(s)")
        if self.type is ChannelType.PAGERDUTY and self.routing_key is None:
            raise ValueError(f"channel {self.name!r}: a pagerduty channel needs routing_key")
        if self.type is ChannelType.WEBHOOK and self.secret is None:
            raise ValueError(f"channel {self.name!r}: a webhook channel needs secret")
        return self


class ChannelsFile(BaseModel):
    """The whole file: grouping windows and the channels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_s: float = Field(300.0, gt=0, le=86_400, description="One message per cause per.")
    quiet_s: float = Field(900.0, gt=0, le=604_800, description="Auto-resolve after this quiet.")
    timeout_s: float = Field(10.0, gt=0, le=60, description="Deadline of one whole call.")
    retry_delays_s: tuple[float, ...] = Field(
        (0.0, 2.0, 10.0), min_length=1, max_length=8, description="Before each attempt."
    )
    allow: tuple[str, ...] = Field((), description="Private hosts/CIDRs channels may reach.")
    channels: list[ChannelSpec] = Field(min_length=1, max_length=32)

    @model_validator(mode="after")
    def _unique(self) -> ChannelsFile:
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ValueError("channel names must be unique")
        if any(d < 0 or d > 3600 for d in self.retry_delays_s):
            raise ValueError("retry_delays_s are between 0 and 3600 s")
        return self


@dataclass(frozen=True)
class Channel:
    """A channel ready to send: its secrets looked up (never printed: see ``__repr__``)."""

    spec: ChannelSpec
    url: str
    routing_key: str | None
    secret: str | None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def min_severity(self) -> Severity:
        return Severity[self.spec.min_severity.upper()]

    def __repr__(self) -> str:
        return f"Channel({self.spec.name!r}, {self.spec.type.value})"


def parse_channels(text: str, suffix: str, source: str) -> ChannelsFile:
    return parse_config_model(text, suffix, source, ChannelsFile, ChannelsFileError)


def load_channels(path: Path) -> ChannelsFile:
    return parse_channels(read_config_text(path), path.suffix.lower(), str(path))


def resolve_channels(config: ChannelsFile, api_keys: Mapping[str, SecretStr]) -> list[Channel]:
    """Look the named secrets up; a missing one is an error naming the name, not the value."""

    def key(channel: str, name: str | None) -> str | None:
        if name is None:
            return None
        if name not in api_keys:
            raise ChannelsFileError(f"channel {channel!r}: no secret {name!r} in api_keys")
        return api_keys[name].get_secret_value()

    out = []
    for spec in config.channels:
        url = spec.url if spec.url is not None else key(spec.name, spec.url_secret)
        assert url is not None  # exactly one of url / url_secret is set
        out.append(
            Channel(spec, url, key(spec.name, spec.routing_key), key(spec.name, spec.secret))
        )
    return out
