"""A small async client for the Confluent Schema Registry REST API (the subset a line needs).

It caches what never changes: an id's schema, and the id a (subject, schema) pair got. Secrets
are held in httpx auth objects and never formatted into messages or logs.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from schemas.errors import AssetlineError
from streams.codecs import RegistryError, UnknownSchemaIdError

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` (httpx ships basic auth only)."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def make_auth(kind: str, secret: str) -> httpx.Auth:
    """Basic auth from ``user:password`` (Confluent's ``basic.auth.user.info``), or bearer."""
    if kind == "bearer":
        return BearerAuth(secret)
    user, sep, password = secret.partition(":")
    if not sep:
        raise ValueError("basic registry auth needs the secret as 'user:password'")
    return httpx.BasicAuth(user, password)


@dataclass(frozen=True)
class RegisteredSchema:
    subject: str
    version: int
    schema_id: int
    schema: dict[str, Any]


def _canonical_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, separators=(",", ":"), sort_keys=True)


class RegistryClient:
    """Registers and fetches Avro schemas; one instance per event loop."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=auth,
            timeout=timeout,
            transport=transport,
            headers={"Accept": f"{CONTENT_TYPE}, application/json"},
        )
        self._by_id: dict[int, dict[str, Any]] = {}
        self._ids: dict[tuple[str, str], int] = {}

    async def register(self, subject: str, schema: dict[str, Any]) -> int:
        """Register ``schema`` under ``subject`` (idempotent) and return its global id."""
        key = (subject, _canonical_text(schema))
        if key in self._ids:
            return self._ids[key]
        body = await self._call(
            "POST", f"/subjects/{quote(subject, safe='')}/versions", {"schema": json.dumps(schema)}
        )
        schema_id = int(body["id"])
        self._ids[key] = schema_id
        self._by_id.setdefault(schema_id, schema)
        return schema_id

    async def lookup(self, subject: str, schema: dict[str, Any]) -> RegisteredSchema | None:
        """The registered version of ``schema`` under ``subject``, or ``None``."""
        try:
            body = await self._call(
                "POST", f"/subjects/{quote(subject, safe='')}", {"schema": json.dumps(schema)}
            )
        except _NotFound:
            return None
        found = self._registered(body, subject)
        self._ids[(subject, _canonical_text(schema))] = found.schema_id
        return found

    async def latest(self, subject: str) -> RegisteredSchema:
        """The latest version under ``subject`` (not cached: it changes)."""
        try:
            body = await self._call("GET", f"/subjects/{quote(subject, safe='')}/versions/latest")
        except _NotFound as exc:
            raise RegistryError(f"registry has no subject {subject!r}: {exc}") from None
        return self._registered(body, subject)

    async def schema(self, schema_id: int) -> dict[str, Any]:
        """The Avro schema with global id ``schema_id`` (cached for good: ids are immutable)."""
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        try:
            body = await self._call("GET", f"/schemas/ids/{schema_id}")
        except _NotFound as exc:
            raise UnknownSchemaIdError(
                f"schema registry has no schema with id {schema_id}: {exc}", schema_id
            ) from None
        schema_type = body.get("schemaType", "AVRO")
        if schema_type != "AVRO":
            raise UnknownSchemaIdError(
                f"schema registry id {schema_id} is a {schema_type} schema, not Avro", schema_id
            )
        schema = self._parse(body, f"id {schema_id}")
        self._by_id[schema_id] = schema
        return schema

    async def aclose(self) -> None:
        await self._http.aclose()

    def _registered(self, body: dict[str, Any], subject: str) -> RegisteredSchema:
        schema = self._parse(body, f"subject {subject!r}")
        schema_id = int(body["id"])
        self._by_id.setdefault(schema_id, schema)
        return RegisteredSchema(subject, int(body["version"]), schema_id, schema)

    @staticmethod
    def _parse(body: dict[str, Any], what: str) -> dict[str, Any]:
        try:
            schema = json.loads(body["schema"])
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"registry returned no readable schema for {what}") from exc
        if not isinstance(schema, dict):
            raise RegistryError(f"registry schema for {what} is not a named Avro record")
        return schema

    async def _call(self, method: str, path: str, payload: object = None) -> dict[str, Any]:
        try:
            response = await self._http.request(
                method,
                path,
                json=payload,
                headers={"Content-Type": CONTENT_TYPE} if payload is not None else None,
            )
        except httpx.HTTPError as exc:
            raise RegistryError(
                f"schema registry {method} {path} failed: {type(exc).__name__}"
            ) from None
        if response.status_code == 404:
            raise _NotFound(_message(response))
        if response.status_code >= 400:
            raise RegistryError(
                f"schema registry {method} {path} answered {response.status_code}: "
                f"{_message(response)}"
            )
        try:
            body = response.json()
        except ValueError:
            raise RegistryError(f"schema registry {method} {path} answered non-JSON") from None
        if not isinstance(body, dict):
            raise RegistryError(f"schema registry {method} {path} answered {type(body).__name__}")
        return body


class _NotFound(AssetlineError):
    """The registry answered 404; each caller turns it into its own answer."""

    code = "registry.not_found"


def _message(response: httpx.Response) -> str:
    """The registry's own ``{"error_code", "message"}``, short (never request headers)."""
    try:
        body = response.json()
        text = f"{body.get('error_code', '')} {body.get('message', '')}".strip()
    except (ValueError, AttributeError):
        text = response.text
    return text[:300]
