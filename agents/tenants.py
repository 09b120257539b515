"""Who may ask the line for what: tenants, their producer credentials, profiles and webhook keys.

The tenants file (``ASSETLINE_TENANTS_FILE``, YAML or TOML) is optional. Without it the line
trusts the ``tenant`` field of a request, as before, and only refuses forged attempts. With it:

```yaml
tenants:
  acme:
    producer_secret: acme-producer   # name in ASSETLINE_API_KEYS; requests must be signed with it
    profiles: [acme]                 # brand profiles acme may name (empty: any)
    default_profile: acme            # used when a request names none, so omitting skips nothing
    webhook_secret: acme-webhooks    # signs acme's own callback_url webhooks
    request_id_prefix: "acme/"       # acme's request ids must start with it
```

a request of a tenant the file does not name is refused, a tenant with a ``producer_secret``
must sign its requests (:mod:`streams.signing`), and a callback_url is signed with the tenant's
own ``webhook_secret`` (no secret: no callback), so one tenant's signed events are worthless
at another tenant's receiver. A ``request_id_prefix`` gives a tenant its own part of the id
space: the ledger is keyed by request id alone, so without it a signed producer of one tenant
could still take another tenant's id first (at attempt 1).

Tenancy is used by generate (admission), validate (origin marks on re-generations), deliver
(callback secrets) and the replay/dlq tools, so it lives here and not inside one stage.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from schemas.attempts import MAX_ATTEMPT
from schemas.records import GenerationRequest
from streams.config_files import (
    ConfigError,
    parse_config_model,
    read_config_text,
)
from streams.settings import Settings
from streams.signing import line_marked, origin_mark, producer_signed

log = logging.getLogger(__name__)

#: Used when no line secret is configured and no tenants file is: origin marks then only keep
#: honest producers out (the value is public); configure ``line_secret_name`` in production.
DEVELOPMENT_LINE_SECRET: Final = b"assetline-development-line-secret"

ATTEMPT_INVALID: Final = "request.attempt_invalid"
ATTEMPT_FORGED: Final = "request.attempt_forged"
UNKNOWN_TENANT: Final = "request.unknown_tenant"
UNAUTHENTICATED: Final = "request.unauthenticated"
PROFILE_FORBIDDEN: Final = "request.profile_forbidden"
ID_OUTSIDE_NAMESPACE: Final = "request.id_outside_namespace"

#: Refusals that say the record is not what it claims to be. They are dead-lettered (never a
#: completion, which would take the request id's ledger slot) and never re-driven with a mark.
NOT_AUTHENTIC: Final = frozenset(
    {ATTEMPT_INVALID, ATTEMPT_FORGED, UNKNOWN_TENANT, UNAUTHENTICATED, ID_OUTSIDE_NAMESPACE}
)


class TenantsFileError(ConfigError):
    """The tenants file cannot be read, does not validate, or names a secret that is not set."""

    code = "config.tenants_file"


class TenantSpec(BaseModel):
    """One tenant's credentials and what it may use; secrets are names in api_keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    producer_secret: str | None = Field(
        None, description="Name in ASSETLINE_API_KEYS of the key requests are signed with."
    )
    profiles: tuple[str, ...] = Field(
        (), description="Brand profiles the tenant may name; empty = any."
    )
    default_profile: str | None = Field(None, description="Profile used when a request names none.")
    webhook_secret: str | None = Field(
        None, description="Name in ASSETLINE_API_KEYS signing this tenant's callback_url hooks."
    )
    request_id_prefix: str | None = Field(
        None, min_length=1, description="The tenant's request ids must start with it."
    )

    @model_validator(mode="after")
    def _default_is_allowed(self) -> TenantSpec:
        if self.default_profile and self.profiles and self.default_profile not in self.profiles:
            raise ValueError(
                f"default_profile {self.default_profile!r} is not among profiles {self.profiles}"
            )
        return self


class TenantsFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tenants: dict[str, TenantSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _namespaces_are_disjoint(self) -> TenantsFile:
        """One tenant's prefix must not contain another's, or their id spaces would overlap."""
        prefixes = {t: s.request_id_prefix for t, s in self.tenants.items() if s.request_id_prefix}
        for a, pa in prefixes.items():
            for b, pb in prefixes.items():
                if a != b and pb.startswith(pa):
                    raise ValueError(
                        f"request_id_prefix {pb!r} of tenant {b!r} starts with {pa!r} of {a!r}"
                    )
        return self


@dataclass(frozen=True)
class Tenancy:
    """The tenants file with its secrets resolved (so a missing secret fails the start)."""

    specs: Mapping[str, TenantSpec]
    producer_secrets: Mapping[str, SecretStr]

    def spec(self, tenant: str) -> TenantSpec | None:
        return self.specs.get(tenant)

    def callback_secret(self, tenant: str) -> tuple[bool, str | None]:
        """(allowed, secret name) for the tenant's own callback_url.

        A tenant without a ``webhook_secret`` gets no callback: signing it with the shared
        default secret would hand it events another tenant's receiver accepts.
        """
        spec = self.specs.get(tenant)
        if spec is None or spec.webhook_secret is None:
            return False, None
        return True, spec.webhook_secret


def parse_tenants(text: str, suffix: str, source: str = "tenants file") -> TenantsFile:
    """Read with the line's safe config parser (no YAML aliases, no duplicate keys)."""
    return parse_config_model(text, suffix, source, TenantsFile, TenantsFileError)


def resolve(config: TenantsFile, api_keys: Mapping[str, SecretStr]) -> Tenancy:
    """Every secret the file names must be set, so a typo fails the start, not a request."""
    producer: dict[str, SecretStr] = {}
    for tenant, spec in config.tenants.items():
        for field_name in ("producer_secret", "webhook_secret"):
            name = getattr(spec, field_name)
            if name is not None and name not in api_keys:
                raise TenantsFileError(
                    f"tenant {tenant!r} names {field_name} {name!r}, which is not set in "
                    "ASSETLINE_API_KEYS (a JSON object of name -> secret)"
                )
        if spec.producer_secret is not None:
            producer[tenant] = api_keys[spec.producer_secret]
    return Tenancy(dict(config.tenants), producer)


def load_tenancy(path: Path | None, api_keys: Mapping[str, SecretStr]) -> Tenancy | None:
    """The resolved tenants file, or None when none is configured."""
    if path is None:
        return None
    try:
        text = read_config_text(path)
    except ConfigError as exc:
        raise TenantsFileError(str(exc)) from None
    return resolve(parse_tenants(text, path.suffix.lower(), str(path)), api_keys)


def line_secret(settings: Settings, tenancy: Tenancy | None) -> bytes:
    """The secret of the line's origin marks.

    Required once a tenants file is configured (tenancy without an unforgeable mark would be
    theatre); otherwise a public development value is used, with a warning.
    """
    secret = settings.api_keys.get(settings.line_secret_name)
    if secret is not None:
        return secret.get_secret_value().encode("utf-8")
    if tenancy is not None:
        raise TenantsFileError(
            f"a tenants file needs the line secret {settings.line_secret_name!r} in "
            "ASSETLINE_API_KEYS (any long random string, the same for every worker and tool)"
        )
    log.warning(
        "no line secret %r in ASSETLINE_API_KEYS: origin marks use a public development value",
        settings.line_secret_name,
    )
    return DEVELOPMENT_LINE_SECRET


@dataclass(frozen=True)
class Refusal:
    """Why a request is not served; ``code`` is a stable dotted code."""

    code: str
    reason: str

    @property
    def authentic(self) -> bool:
        """False: dead-letter it. True: the producer is who it says; a FAILED completion is fine."""
        return self.code not in NOT_AUTHENTIC


@dataclass(frozen=True)
class Admission:
    """The request to serve (its profile possibly filled in), or why it is refused."""

    request: GenerationRequest
    refusal: Refusal | None = None


class Gatekeeper:
    """Admission rules for ``.requests`` records, and the line's origin marks.

    Pure apart from the secrets it holds: the same checks run in the generate stage and in the
    replay/dlq tools (which only mark what the line would have accepted).
    """

    def __init__(self, secret: bytes, tenancy: Tenancy | None = None) -> None:
        self._secret = secret
        self.tenancy = tenancy

    @classmethod
    def from_settings(cls, settings: Settings) -> Gatekeeper:
        tenancy = load_tenancy(settings.tenants_file, settings.api_keys)
        return cls(line_secret(settings, tenancy), tenancy)

    def mark(self, value: bytes) -> tuple[str, bytes]:
        """The origin header for a request the line itself re-submits as ``value``."""
        return origin_mark(value, self._secret)

    def authenticity(
        self,
        request: GenerationRequest,
        value: bytes,
        headers: Iterable[tuple[str, bytes]] | None,
    ) -> Refusal | None:
        """Is the record what it claims: a valid attempt, from the line or its own tenant?"""
        headers = list(headers or ())
        attempt = request.attempt
        if attempt < 1 or attempt >= MAX_ATTEMPT:
            return Refusal(ATTEMPT_INVALID, f"attempt {attempt} is outside 1..{MAX_ATTEMPT - 1}")
        # Only a later attempt can carry (or needs) the mark: first attempts skip the HMAC.
        marked = attempt > 1 and line_marked(value, headers, self._secret)
        if attempt > 1 and not marked:
            return Refusal(
                ATTEMPT_FORGED,
                f"attempt {attempt} carries no valid line origin mark; producers send attempt 1",
            )
        if self.tenancy is None:
            return None
        spec = self.tenancy.spec(request.tenant)
        if spec is None:
            return Refusal(UNKNOWN_TENANT, f"tenant {request.tenant!r} is not in the tenants file")
        prefix = spec.request_id_prefix
        if prefix is not None and not request.request_id.startswith(prefix):
            return Refusal(
                ID_OUTSIDE_NAMESPACE,
                f"tenant {request.tenant!r}'s request ids start with {prefix!r}",
            )
        secret = self.tenancy.producer_secrets.get(request.tenant)
        if (
            secret is not None
            and not marked
            and not producer_signed(value, headers, secret.get_secret_value())
        ):
            return Refusal(
                UNAUTHENTICATED,
                f"request is not signed with tenant {request.tenant!r}'s producer secret",
            )
        return None

    def admit(
        self,
        request: GenerationRequest,
        value: bytes,
        headers: Iterable[tuple[str, bytes]] | None,
    ) -> Admission:
        """Authenticity first, then the tenant's profile rules (default filled in)."""
        refusal = self.authenticity(request, value, headers)
        if refusal is not None or self.tenancy is None:
            return Admission(request, refusal)
        spec = self.tenancy.spec(request.tenant)
        assert spec is not None, "authenticity refuses unknown tenants"
        profile = request.brand_profile_id or spec.default_profile
        if profile != request.brand_profile_id:
            request = request.model_copy(update={"brand_profile_id": profile})
        if spec.profiles and profile not in spec.profiles:
            named = repr(profile) if profile else "no profile"
            allowed = ", ".join(spec.profiles)
            # Cleared so no stage consults another brand's profile; the reason names it.
            return Admission(
                request.model_copy(update={"brand_profile_id": None}),
                Refusal(
                    PROFILE_FORBIDDEN,
                    f"tenant {request.tenant!r} may not use {named}; allowed: {allowed}",
                ),
            )
        return Admission(request)
