"""Registering the line's contracts when a worker starts, so its Confluent writers have ids."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from streams.codecs import TOPIC_CONTRACTS, Codecs
from streams.registry.client import RegistryClient
from streams.registry.resolver import RegistryResolver
from streams.registry.strategy import SubjectStrategy, subject_name
from streams.topics import TopicNames

log = logging.getLogger(__name__)


async def register_schemas(
    codecs: Codecs, client: RegistryClient, names: TopicNames, strategy: SubjectStrategy | str
) -> dict[str, int]:
    """Register every line topic's value schema; bind the ids to the codecs. Subject -> id."""
    ids: dict[str, int] = {}
    for topic_field, contract in TOPIC_CONTRACTS.items():
        codec = codecs.by_field(contract)
        subject = subject_name(strategy, getattr(names, topic_field), codec.reader_schema)
        if subject in ids:
            continue
        schema_id = await client.register(subject, codec.reader_schema)
        ids[subject] = schema_id
        if codec.registry_id is None:
            codec.bind_registry_id(schema_id)
        else:  # a registry with per-subject ids: still readable under this one
            codecs.store.register_id(schema_id, codec.reader_schema)
    return ids


async def register_line_schemas(
    codecs: Codecs, names: TopicNames, strategy: SubjectStrategy | str
) -> dict[str, int]:
    """The worker start-up hook: a no-op unless the codecs have a registry."""
    resolver = codecs.resolver
    if not isinstance(resolver, RegistryResolver):
        return {}
    ids = await register_schemas(codecs, resolver.client, names, strategy)
    where = urlsplit(resolver.client.base_url)
    # host and port only: an operator may have put credentials or a token into the URL
    log.info("registered %d subjects at %s://%s", len(ids), where.scheme, where.hostname)
    return ids
