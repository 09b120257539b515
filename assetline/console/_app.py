"""The console's aiohttp application: middlewares (security headers, sign-in, CSRF), the
page registry and the shared state every page reads (:class:`Console`)."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import jinja2
from aiohttp import web

from assetline.console.auth import USER_ID, UsersFile
from assetline.console.sessions import COOKIE, Session, SessionSigner, check_csrf
from streams.codecs import Codecs
from streams.settings import Settings

HERE: Final = Path(__file__).parent
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Paths anyone may reach: the sign-in page, static files, the health probe.
PUBLIC_PREFIXES: Final = ("/signin", "/static/", "/healthz")
_UNSAFE: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: No inline script or style anywhere: every script is /static/console.js.
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
SIGNIN_COOKIE: Final = "assetline_signin"


@dataclass(frozen=True)
class Page:
    """One page module: its nav entry and the function that adds its routes (and hooks)."""

    label: str
    path: str
    routes: Callable[[web.Application], None]


@dataclass
class Console:
    """What every page shares; reach it with ``request.app[CONSOLE]``."""

    settings: Settings
    codecs: Codecs
    signer: SessionSigner
    users: UsersFile
    templates: jinja2.Environment
    pages: Sequence[Page]
    #: Per-page state (the review index, a timeline index, ...), by the page's own key.
    state: dict[str, Any] = field(default_factory=dict)

    def render(
        self, request: web.Request, template: str, status: int = 200, **ctx: Any
    ) -> web.Response:
        session: Session | None = request.get(SESSION)
        html = self.templates.get_template(template).render(
            session=session,
            csrf=session.csrf if session else "",
            nav=[p for p in self.pages if p.label],
            here=request.path,
            **ctx,
        )
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


CONSOLE: Final = web.AppKey("console", Console)
#: The signed-in session of a request (set by :func:`require_session`).
SESSION: Final = web.RequestKey("session", Session)


def session_of(request: web.Request) -> Session:
    """The signed-in session (the auth middleware guarantees one outside public paths)."""
    session: Session = request[SESSION]
    return session


def _public(path: str) -> bool:
    return path == "/signin" or any(path.startswith(p) for p in PUBLIC_PREFIXES[1:])


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _stamp(exc.headers)
        raise
    _stamp(response.headers)
    return response


def _stamp(headers: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outside public paths a request needs a session (cookie or trusted proxy header)."""
    console = request.app[CONSOLE]
    session = console.signer.read(request.cookies.get(COOKIE))
    issued: str | None = None
    header = console.settings.console_proxy_user_header
    if header and (proxied := request.headers.get(header)):
        if not USER_ID.fullmatch(proxied):
            raise web.HTTPForbidden(text="proxy user id refused")
        if session is None or session.user != proxied:
            issued, session = console.signer.issue(proxied)
    if session is not None:
        request[SESSION] = session
    elif not _public(request.path):
        if request.method == "GET" and "text/html" in request.headers.get("Accept", "text/html"):
            raise web.HTTPSeeOther(f"/signin?next={quote(request.path_qs, safe='')}")
        raise web.HTTPUnauthorized(text="sign in first")
    response = await handler(request)
    if issued is not None:
        set_session_cookie(response, console, issued)
    return response


@web.middleware
async def require_csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every unsafe request carries its session's CSRF token (form field or header)."""
    if request.method in _UNSAFE and request.path != "/signin":
        session: Session | None = request.get(SESSION)
        token = request.headers.get("X-CSRF-Token")
        if token is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            token = str((await request.post()).get("csrf", "")) or None
        if session is None or not check_csrf(session, token):
            raise web.HTTPForbidden(text="missing or wrong CSRF token")
    return await handler(request)


def see_other(location: str) -> web.Response:
    """A 303 redirect as a plain response (returning an HTTPException is deprecated)."""
    return web.Response(status=303, headers={"Location": location})


def set_session_cookie(response: web.StreamResponse, console: Console, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(console.settings.console_session_ttl_s),
        httponly=True,
        samesite="Strict",
        secure=console.settings.console_cookie_secure,
        path="/",
    )


def signin_token(console: Console, nonce: str) -> str:
    """Login-CSRF token: the sign-in form's hidden field must match its cookie's nonce."""
    return hmac.new(console.signer.secret, f"signin\0{nonce}".encode(), "sha256").hexdigest()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(
    settings: Settings, pages: Sequence[Page], *, codecs: Codecs | None = None
) -> web.Application:
    """The console application with ``pages`` (the full console: ``pages.create_console``)."""
    secret = settings.console_secret.get_secret_value().encode() or secrets.token_bytes(32)
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    app = web.Application(middlewares=[security_headers, require_session, require_csrf])
    console = Console(
        settings=settings,
        codecs=codecs or Codecs.load(),
        signer=SessionSigner(secret, settings.console_session_ttl_s),
        users=UsersFile(settings.console_users_file),
        templates=templates,
        pages=list(pages),
    )
    app[CONSOLE] = console
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", HERE / "static", follow_symlinks=False)
    for page in console.pages:
        page.routes(app)
    return app
