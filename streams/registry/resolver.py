"""Fetching unknown Confluent ids into the codecs' schema store, for the stage's retry."""

from __future__ import annotations

from streams.codecs import SchemaStore
from streams.registry.client import RegistryClient


class RegistryResolver:
    """The :class:`streams.codecs.SchemaResolver` backed by a registry client."""

    def __init__(self, client: RegistryClient, store: SchemaStore) -> None:
        self.client = client
        self.store = store

    async def ensure_known(self, schema_id: int) -> None:
        """Make ``schema_id`` decodable; raises UnknownSchemaIdError or RegistryError."""
        if self.store.knows_id(schema_id):
            return
        schema = await self.client.schema(schema_id)
        self.store.register_id(schema_id, schema)
