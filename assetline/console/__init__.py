"""``assetline console``: the operator's web application (aiohttp + Jinja2, no build step).

Its own process; it needs only the broker and the blob store. Pages are rendered on the
server; one static script (``static/console.js``) adds keyboard shortcuts, bulk selection and
live updates over Server-Sent Events. The CSP allows no inline script or style.

Security, in one place (``_app.py``): every path but ``/signin``, ``/static/`` and ``/healthz``
needs a session (``sessions.py``: a signed cookie; users from ``console_users_file``, hashed
with scrypt, ``auth.py``; or ``console_proxy_user_header`` behind a trusted proxy); every POST
carries its session's CSRF token; asset bytes are served by request id and attempt from the
item's blob ref only (``assets.py``).

Adding a page (the timeline, dead letters, campaigns): write a module with

    def routes(app: web.Application) -> None:
        app.router.add_get("/timeline", timeline_page)      # handlers get request.app[CONSOLE]
        app.on_startup.append(start_my_index)               # optional: follow topics, etc.

render with ``request.app[CONSOLE].render(request, "my_page.html", **ctx)`` (a template in
``templates/`` that ``{% extends "base.html" %}``; POST forms include
``<input type="hidden" name="csrf" value="{{ csrf }}">``; fetch() sends the
``X-CSRF-Token`` header from ``document.body.dataset.csrf``), keep per-page state in
``CONSOLE.state["<page>.<name>"]``, and add ``Page("Timeline", "/timeline", routes)`` to
``PAGES`` in ``pages.py``: the nav in ``base.html`` lists every page with a label.
Sign-in, CSRF and security headers apply to the new routes without anything more;
``session_of(request).user`` is the signed-in user, ``see_other(path)`` a 303 redirect.
"""

from __future__ import annotations

from assetline.console._app import (
    CONSOLE,
    SESSION,
    Console,
    Page,
    create_app,
    see_other,
    session_of,
)
from assetline.console.pages import PAGES, create_console
from assetline.console.server import serve

__all__ = [
    "CONSOLE",
    "PAGES",
    "SESSION",
    "Console",
    "Page",
    "create_app",
    "create_console",
    "see_other",
    "serve",
    "session_of",
]
