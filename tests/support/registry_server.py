"""A small Confluent-compatible Schema Registry for tests (no registry server installs here).

It implements the documented REST subset that assetline and confluent-kafka's client use:
``POST /subjects/{s}/versions``, ``POST /subjects/{s}`` (lookup), ``GET /schemas/ids/{id}``,
``GET /subjects/{s}/versions/latest``, ``GET /subjects``, with optional basic auth. Like the
real registry, ids are global: the same schema under two subjects gets one id, and every
schema also gets a GUID (what newer serializers put in the ``__value_schema_id`` header).

It runs on its own event loop in a thread, so sync clients (confluent-kafka) and async tests
can share it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def _normal(text: str) -> str:
    return json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True)


@dataclass
class RegistryState:
    schemas: dict[int, str] = field(default_factory=dict)  # id -> schema text as registered
    guids: dict[int, str] = field(default_factory=dict)
    by_text: dict[str, int] = field(default_factory=dict)  # normalised text -> id
    subjects: dict[str, list[int]] = field(default_factory=dict)  # subject -> ids by version
    calls: Counter[str] = field(default_factory=Counter)  # "GET /schemas/ids/{id}" -> count


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {"error_code": code, "message": message}, status=status, content_type=CONTENT_TYPE
    )


def _ok(body: object) -> web.Response:
    return web.json_response(body, content_type=CONTENT_TYPE)


def build_app(state: RegistryState, credentials: tuple[str, str] | None = None) -> web.Application:
    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        resource = request.match_info.route.resource
        state.calls[f"{request.method} {resource.canonical if resource else request.path}"] += 1
        if credentials is not None:
            expected = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
            if request.headers.get("Authorization") != expected:
                return _error(401, 401, "Unauthorized")
        response: web.StreamResponse = await handler(request)
        return response

    def registered(subject: str, schema_id: int) -> dict[str, Any]:
        return {
            "subject": subject,
            "id": schema_id,
            "guid": state.guids[schema_id],
            "version": state.subjects[subject].index(schema_id) + 1,
            "schema": state.schemas[schema_id],
        }

    async def register(request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        body = await request.json()
        if body.get("schemaType", "AVRO") != "AVRO":
            return _error(422, 42201, "only AVRO schemas are supported here")
        text = body["schema"]
        try:
            key = _normal(text)
        except json.JSONDecodeError:
            return _error(422, 42201, "Invalid schema")
        schema_id = state.by_text.get(key)
        if schema_id is None:
            schema_id = len(state.schemas) + 1
            state.by_text[key] = schema_id
            state.schemas[schema_id] = text
            state.guids[schema_id] = str(uuid.uuid4())
        versions = state.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return _ok(registered(subject, schema_id))

    async def lookup(request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        if subject not in state.subjects:
            return _error(404, 40401, f"Subject '{subject}' not found.")
        body = await request.json()
        schema_id = state.by_text.get(_normal(body["schema"]))
        if schema_id is None or schema_id not in state.subjects[subject]:
            return _error(404, 40403, "Schema not found")
        return _ok(registered(subject, schema_id))

    async def by_id(request: web.Request) -> web.Response:
        schema_id = int(request.match_info["schema_id"])
        if schema_id not in state.schemas:
            return _error(404, 40403, f"Schema {schema_id} not found")
        return _ok({"schema": state.schemas[schema_id], "guid": state.guids[schema_id]})

    async def latest(request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        if subject not in state.subjects:
            return _error(404, 40401, f"Subject '{subject}' not found.")
        return _ok(registered(subject, state.subjects[subject][-1]))

    async def subjects(request: web.Request) -> web.Response:
        return _ok(sorted(state.subjects))

    app = web.Application(middlewares=[auth])
    app.router.add_post("/subjects/{subject}/versions", register)
    app.router.add_get("/subjects/{subject}/versions/latest", latest)
    app.router.add_post("/subjects/{subject}", lookup)
    app.router.add_get("/schemas/ids/{schema_id}", by_id)
    app.router.add_get("/subjects", subjects)
    return app


class RegistryServer:
    """``with RegistryServer() as server: server.url`` -- a registry on a free local port."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.state = RegistryState()
        self.credentials = credentials
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> RegistryServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.url = future.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> str:
        self._runner = web.AppRunner(build_app(self.state, self.credentials))
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"
