"""Sign in (users file) and sign out; ``/`` goes to the first page of the nav."""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import urlsplit

from aiohttp import web

from assetline.console._app import (
    CONSOLE,
    SESSION,
    SIGNIN_COOKIE,
    see_other,
    set_session_cookie,
    signin_token,
)
from assetline.console.auth import SignInThrottle
from assetline.console.sessions import COOKIE, Session

THROTTLE_KEY = "signin.throttle"


def _safe_next(target: str | None) -> str:
    """Only a local path: ``next=https://evil`` or ``//evil`` would be an open redirect."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


async def signin_form(request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
    console = request.app[CONSOLE]
    nonce = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(18)
    response = console.render(
        request,
        "signin.html",
        status=status,
        error=error,
        signin_csrf=signin_token(console, nonce),
        next=_safe_next(request.query.get("next")),
    )
    response.set_cookie(SIGNIN_COOKIE, nonce, httponly=True, samesite="Strict", path="/signin")
    return response


async def signin_get(request: web.Request) -> web.Response:
    return await signin_form(request)


async def signin_post(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    form = await request.post()
    nonce = request.cookies.get(SIGNIN_COOKIE, "")
    if not nonce or str(form.get("csrf", "")) != signin_token(console, nonce):
        raise web.HTTPForbidden(text="missing or wrong CSRF token")
    user, password = str(form.get("user", ""))[:64], str(form.get("password", ""))
    throttle: SignInThrottle = console.state.setdefault(THROTTLE_KEY, SignInThrottle())
    if throttle.blocked(user):
        return await signin_form(
            request, error="Too many failed sign-ins; try again in a few minutes.", status=429
        )
    # scrypt takes ~50 ms of CPU: off the event loop, so pages and live updates keep flowing
    if not await asyncio.to_thread(console.users.check, user, password):
        throttle.failed(user)
        return await signin_form(request, error="Unknown user or wrong password.", status=401)
    cookie, _ = console.signer.issue(user)
    response = see_other(_safe_next(str(form.get("next", "/"))))
    set_session_cookie(response, console, cookie)
    response.del_cookie(SIGNIN_COOKIE, path="/signin")
    return response


async def signout(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    session: Session = request[SESSION]
    console.signer.revoke(session)
    response = see_other("/signin")
    response.del_cookie(COOKIE, path="/")
    return response


async def home(request: web.Request) -> web.StreamResponse:
    pages = [p for p in request.app[CONSOLE].pages if p.label]
    raise web.HTTPSeeOther(pages[0].path if pages else "/signin")


def routes(app: web.Application) -> None:
    app.router.add_get("/", home)
    app.router.add_get("/signin", signin_get)
    app.router.add_post("/signin", signin_post)
    app.router.add_post("/signout", signout)
