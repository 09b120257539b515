"""Local servers on 127.0.0.1 speaking two email platforms' upload APIs, as documented.

- Mailchimp Marketing API, File Manager upload: ``POST /3.0/file-manager/files`` with a JSON
  body ``{"name", "file_data" (base64), "folder_id"?}``, HTTP Basic ``anystring:<apikey>``;
  answers 200 with the file (``id``, ``full_size_url``, ...) or a problem document
  ``{"type", "title", "status", "detail", "instance"}``.
- Klaviyo image upload: ``POST /api/image-upload``, a multipart form with ``file`` and
  ``name``, ``Authorization: Klaviyo-API-Key <key>`` and a ``revision`` header; answers 201
  with a JSON:API document (``data.id``, ``data.attributes.image_url``) or
  ``{"errors": [{"id", "status", "code", "title", "detail", "source"}]}``.

Both check what the real APIs check that matters here (auth, required fields, decodable file)
and can be told to throttle (429 with ``Retry-After``) the next N uploads.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["KLAVIYO_KEY", "MAILCHIMP_KEY", "PlatformServer", "Upload", "platform_server"]

MAILCHIMP_KEY = "0123456789abcdef0123456789abcdef-us21"
KLAVIYO_KEY = "pk_0123456789abcdef0123456789abcdef01"
_PROBLEM = "https://mailchimp.com/developer/marketing/docs/errors/"


@dataclass
class Upload:
    """One accepted upload, as the platform stored it."""

    platform: str
    id: str
    name: str
    data: bytes
    fields: dict[str, Any]
    headers: dict[str, str]


@dataclass
class PlatformServer:
    """Both platforms on one port; ``throttle[platform]`` uploads are answered 429 first."""

    host: str = "127.0.0.1"
    url: str = ""
    uploads: list[Upload] = field(default_factory=list)
    throttle: dict[str, int] = field(default_factory=dict)
    retry_after: str = "1"
    requests: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    def start(self) -> PlatformServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, 0))
        self.url = f"http://{self.host}:{sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(sock), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(timeout=10)
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/3.0/file-manager/files", self._mailchimp)
        app.router.add_post("/api/image-upload", self._klaviyo)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    def _throttled(self, platform: str) -> bool:
        self.requests += 1
        if self.throttle.get(platform, 0) > 0:
            self.throttle[platform] -= 1
            return True
        return False

    # --- Mailchimp ------------------------------------------------------------------------

    @staticmethod
    def _mc_problem(status: int, title: str, detail: str) -> web.Response:
        return web.json_response(
            {"type": _PROBLEM, "title": title, "status": status, "detail": detail,
             "instance": "00000000-0000-0000-0000-000000000000"},
            status=status,
            content_type="application/problem+json",
        )  # fmt: skip

    async def _mailchimp(self, request: web.Request) -> web.StreamResponse:
        expected = "Basic " + base64.b64encode(f"anystring:{MAILCHIMP_KEY}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return self._mc_problem(
                401,
                "API Key Invalid",
                f"Your API key may be invalid, or you've attempted to access the wrong "
                f"datacenter. Sent: {request.headers.get('Authorization', '')}",
            )
        if self._throttled("mailchimp"):
            response = self._mc_problem(
                429,
                "Too Many Requests",
                "You have exceeded the limit of 10 simultaneous connections.",
            )
            response.headers["Retry-After"] = self.retry_after
            return response
        try:
            body = await request.json()
            data = base64.b64decode(body["file_data"], validate=True)
            name = body["name"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            return self._mc_problem(
                400, "Invalid Resource", "The resource submitted could not be validated: "
                "name and file_data (base64) are required.",
            )  # fmt: skip
        if "folder_id" in body and not isinstance(body["folder_id"], int):
            return self._mc_problem(400, "Invalid Resource", "folder_id must be an integer.")
        if not name.lower().endswith((".png", ".jpg", ".jpeg", ".gif", ".pdf", ".txt")):
            return self._mc_problem(400, "Invalid Resource", "File type not supported.")
        file_id = len(self.uploads) + 1001
        self.uploads.append(
            Upload("mailchimp", str(file_id), name, data, body, dict(request.headers))
        )
        return web.json_response(
            {
                "id": file_id,
                "folder_id": body.get("folder_id", 0),
                "type": "image",
                "name": name,
                "full_size_url": f"https://mcusercontent.com/abc123/images/{hashlib.sha256(data).hexdigest()[:12]}/{name}",
                "thumbnail_url": f"https://mcusercontent.com/abc123/_thumbs/{name}",
                "size": len(data),
                "created_at": "2026-12-03T22:00:00+00:00",
                "created_by": "assetline",
                "width": 64,
                "height": 64,
                "_links": [],
            }
        )

    # --- Klaviyo --------------------------------------------------------------------------

    @staticmethod
    def _kl_errors(status: int, code: str, title: str, detail: str) -> web.Response:
        return web.json_response(
            {"errors": [{"id": "5b5b4c0a-0000-0000-0000-000000000000", "status": status,
                         "code": code, "title": title, "detail": detail,
                         "source": {"pointer": "/data/"}}]},
            status=status,
            content_type="application/vnd.api+json",
        )  # fmt: skip

    async def _klaviyo(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Klaviyo-API-Key {KLAVIYO_KEY}":
            return self._kl_errors(
                401,
                "not_authenticated",
                "Authentication credentials were not provided.",
                f"Missing or invalid private key ({request.headers.get('Authorization', '')}).",
            )
        if not request.headers.get("revision"):
            return self._kl_errors(400, "invalid", "Invalid input.", "revision header required")
        if self._throttled("klaviyo"):
            response = self._kl_errors(429, "throttled", "Request was throttled.", "Retry later.")
            response.headers["Retry-After"] = self.retry_after
            return response
        if not request.content_type.startswith("multipart/form-data"):
            return self._kl_errors(415, "unsupported_media_type", "Unsupported media type.", "")
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return self._kl_errors(400, "invalid", "Invalid input.", "'file' is required.")
        data = upload.file.read()
        if not data:
            return self._kl_errors(400, "invalid", "Invalid input.", "The file is empty.")
        name = str(form.get("name") or upload.filename)
        image_id = f"{len(self.uploads) + 70000}"
        fields = {key: str(value) for key, value in form.items() if key != "file"}
        self.uploads.append(Upload("klaviyo", image_id, name, data, fields, dict(request.headers)))
        digest = hashlib.sha256(data).hexdigest()[:12]
        return web.json_response(
            {
                "data": {
                    "type": "image",
                    "id": image_id,
                    "attributes": {
                        "name": name,
                        "image_url": f"https://d3k81ch9hvuctc.cloudfront.net/company/AbC123/images/{digest}.png",
                        "format": upload.content_type.split("/")[-1],
                        "size": len(data),
                        "hidden": False,
                        "updated_at": "2026-12-03T22:00:00+00:00",
                    },
                    "links": {"self": f"https://a.klaviyo.com/api/images/{image_id}/"},
                },
                "links": {"self": "https://a.klaviyo.com/api/image-upload/"},
            },
            status=201,
            content_type="application/vnd.api+json",
        )


@contextmanager
def platform_server() -> Iterator[PlatformServer]:
    """A started server, stopped on exit; wrap it in a pytest fixture."""
    server = PlatformServer().start()
    try:
        yield server
    finally:
        server.stop()
