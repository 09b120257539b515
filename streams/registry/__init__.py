"""Confluent Schema Registry support: client, subject strategies, start-up registration.

Only built when ``schema_registry_url`` is set; otherwise the line needs no registry at all.
"""

from __future__ import annotations

from streams.codecs import Codecs, SchemaStore
from streams.registry.client import BearerAuth, RegisteredSchema, RegistryClient, make_auth
from streams.registry.resolver import RegistryResolver
from streams.registry.strategy import SubjectStrategy, record_fullname, subject_name
from streams.settings import Settings

__all__ = [
    "BearerAuth",
    "RegisteredSchema",
    "RegistryClient",
    "RegistryResolver",
    "SubjectStrategy",
    "client_from_settings",
    "codecs_for_settings",
    "make_auth",
    "record_fullname",
    "resolver_from_settings",
    "subject_name",
]


def client_from_settings(settings: Settings) -> RegistryClient | None:
    """A client for ``schema_registry_url`` with the named secret, or ``None`` if unset."""
    if not settings.schema_registry_url:
        return None
    auth = None
    if settings.schema_registry_auth:
        secret = settings.api_keys.get(settings.schema_registry_auth)
        if secret is None:
            raise ValueError(
                f"schema_registry_auth names {settings.schema_registry_auth!r}, "
                "which is not in api_keys"
            )
        auth = make_auth(settings.schema_registry_auth_type, secret.get_secret_value())
    return RegistryClient(
        settings.schema_registry_url, auth=auth, timeout=settings.schema_registry_timeout_s
    )


def resolver_from_settings(settings: Settings, store: SchemaStore) -> RegistryResolver | None:
    client = client_from_settings(settings)
    return None if client is None else RegistryResolver(client, store)


def codecs_for_settings(settings: Settings) -> Codecs:
    """The worker's codecs: configured framings, and a registry resolver if one is set.

    Here rather than on :class:`Codecs`, so the registry depends on the codecs and not both ways.
    """
    store = SchemaStore()
    return Codecs.load(
        store,
        wire_formats=settings.wire_format_by_topic,
        resolver=resolver_from_settings(settings, store),
    )
