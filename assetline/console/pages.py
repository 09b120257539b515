"""The console's pages, in nav order. Add a page here: ``Page(label, path, routes)``."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from assetline.console import _signin, dead_letter_views, review_views, timeline_views
from assetline.console._app import Page, create_app
from streams.codecs import Codecs
from streams.settings import Settings

PAGES: Final[list[Page]] = [
    Page("", "/signin", _signin.routes),  # no nav entry
    Page("Review", "/review", review_views.routes),
    Page("Dead letters", "/deadletters", dead_letter_views.routes),
    Page("Timeline", "/requests", timeline_views.routes),
    Page("Campaigns", "/campaigns", timeline_views.campaign_routes),
]


def create_console(settings: Settings, *, codecs: Codecs | None = None) -> web.Application:
    """The console with every page of :data:`PAGES`."""
    return create_app(settings, PAGES, codecs=codecs)
