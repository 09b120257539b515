"""The review pages over HTTP on 127.0.0.1, on a review index filled here (no broker): the
queue filters by tenant, campaign, profile and failed check, each on its own and together;
an item's page shows every attempt, the off-palette colours beside the brand's palette (read
from the profile) and the prohibited term highlighted where it was found."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from assetline.console import _signin, assets, review_views
from assetline.console._app import CONSOLE, Page, create_app
from assetline.console.auth import UsersFile
from assetline.console.review_index import ReviewIndex
from assetline.dev.broker import free_ports
from schemas.records import (
    AssetKind,
    BlobRef,
    CheckResult,
    GenerationRequest,
    RawAsset,
    ReviewItem,
    ReviewStatus,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from streams.blobs import open_blob_store
from streams.codecs import Codecs
from streams.settings import Settings

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
BRAND = """\
id: brand
review: true
palette:
  colors: ["#E4002B", "#0A0A0A"]
  max_delta_e: 10
  min_share: 0.8
"""
PALETTE_FAIL = (
    "only 0.0% of pixels within ΔE 10 of the brand palette (need 80.0%); "
    "off-palette: #c81e1e 100.0% (nearest #e4002b, ΔE 12.3)"
)
COPY = "Totally FREE shoes for runners"
Client = TestClient[web.Request, web.Application]


def _review_routes(app: web.Application) -> None:
    """The queue and item pages without the Kafka-following start-up of ``review_views``."""
    app.router.add_get("/review", review_views.queue)
    app.router.add_get("/review/item/{request_id}", review_views.detail)
    assets.routes(app)


PAGES = [Page("", "/signin", _signin.routes), Page("Review", "/review", _review_routes)]


def _settings(tmp_path: Path) -> Settings:
    users = tmp_path / "users"
    UsersFile(users).add("ana", "ana-pass-1")
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "brand.yaml").write_text(BRAND)
    (port,) = free_ports(1)  # nothing listens: these pages read the index handed in
    return Settings(
        kafka_bootstrap=f"127.0.0.1:{port}",
        topic_prefix="rv",
        console_users_file=users,
        blob_dir=tmp_path / "blobs",
        profiles_dir=profiles,
    )


def _asset(
    rid: str,
    *,
    tenant: str,
    campaign: str,
    profile: str | None,
    checks: list[CheckResult],
    blob: BlobRef,
    attempt: int = 1,
    kind: AssetKind = AssetKind.IMAGE,
) -> ValidatedAsset:
    request = GenerationRequest(
        request_id=rid,
        idempotency_key=rid,
        tenant=tenant,
        campaign_id=campaign,
        kind=kind,
        prompt_template="Banner",
        brand_profile_id=profile,
        attempt=attempt,
    )
    raw = RawAsset(
        request=request, blob=blob, provider="offline", model_version="offline-1", latency_ms=1.0
    )
    report = ValidationReport(verdict=Verdict.FAIL, profile=profile, checks=checks)
    return ValidatedAsset(raw=raw, report=report)


def _check(code: str, message: str = "failed") -> CheckResult:
    return CheckResult(code=code, passed=False, message=message)


def _index(settings: Settings, codecs: Codecs) -> ReviewIndex:
    store = open_blob_store(settings)
    out = io.BytesIO()
    Image.new("RGB", (64, 40), (200, 30, 30)).save(out, "PNG")
    png = store.put(out.getvalue(), "image/png")
    text = store.put(COPY.encode(), "text/plain")
    # (id, tenant, campaign, profile, failed check): each filter value picks a different set
    rows = [
        ("r-1", "acme", "spring", "brand", "palette.brand"),
        ("r-2", "acme", "autumn", None, "image.size"),
        ("r-3", "globex", "spring", None, "palette.brand"),
        ("r-4", "globex", "autumn", "brand", "image.size"),
    ]
    index = ReviewIndex(settings, codecs)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n, (rid, tenant, campaign, profile, code) in enumerate(rows):
        message = PALETTE_FAIL if code == "palette.brand" else "size is 64x40"
        asset = _asset(
            rid,
            tenant=tenant,
            campaign=campaign,
            profile=profile,
            checks=[_check(code, message)],
            blob=png,
            attempt=2,
        )
        index.items[rid] = ReviewItem(
            request_id=rid,
            status=ReviewStatus.PENDING,
            asset=asset,
            queued_at=start + timedelta(seconds=n),
        )
    # r-1's first attempt, sent back for re-generation: shown beside the one in review
    index.attempts["r-1"] = {
        1: _asset(
            "r-1",
            tenant="acme",
            campaign="spring",
            profile="brand",
            checks=[_check("palette.brand", PALETTE_FAIL)],
            blob=png,
            attempt=1,
        )
    }
    terms = _check("text.prohibited", "found 'free' as 'FREE' at char 8")
    index.items["c-1"] = ReviewItem(
        request_id="c-1",
        status=ReviewStatus.PENDING,
        asset=_asset(
            "c-1",
            tenant="acme",
            campaign="spring",
            profile="brand",
            checks=[terms],
            blob=text,
            kind=AssetKind.TEXT,
        ),
        queued_at=start + timedelta(seconds=10),
    )
    index.ready.set()
    return index


async def _sign_in(client: Client) -> None:
    found = _CSRF.search(await (await client.get("/signin")).text())
    assert found is not None
    form = {"user": "ana", "password": "ana-pass-1", "csrf": found.group(1), "next": "/review"}
    signed = await client.post("/signin", data=form, allow_redirects=False)
    assert signed.status == 303, await signed.text()


async def _shown(client: Client, **query: str) -> set[str]:
    html = await (await client.get("/review", params=query)).text()
    return set(re.findall(r'<article class="card" data-id="([^"]+)"', html))


def test_queue_filters_and_item_page(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    codecs = Codecs.load()
    app = create_app(settings, PAGES, codecs=codecs)
    state = app[CONSOLE].state
    state[assets.INDEX_KEY] = _index(settings, codecs)
    state[assets.BLOBS_KEY] = open_blob_store(settings)
    state[assets.THUMBS_KEY] = assets.ThumbCache()
    state[review_views.SNIPPETS_KEY] = assets.ThumbCache()

    async def go() -> None:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await _sign_in(client)
            assert await _shown(client) == {"r-1", "r-2", "r-3", "r-4", "c-1"}
            # each filter on its own ...
            assert await _shown(client, tenant="globex") == {"r-3", "r-4"}
            assert await _shown(client, campaign="autumn") == {"r-2", "r-4"}
            assert await _shown(client, profile="brand") == {"r-1", "r-4", "c-1"}
            assert await _shown(client, check="image.size") == {"r-2", "r-4"}
            assert await _shown(client, check="text.prohibited") == {"c-1"}
            # ... and together
            assert await _shown(client, tenant="acme", check="palette.brand") == {"r-1"}
            assert await _shown(client, campaign="spring", profile="brand") == {"r-1", "c-1"}
            assert await _shown(client, tenant="globex", campaign="spring") == {"r-3"}
            queue = await (await client.get("/review")).text()
            for value in ("globex", "autumn", "brand", "text.prohibited"):
                assert f'<option value="{value}">' in queue  # the filter choices
            # the text card previews the asset's own words
            assert COPY in queue

            # every attempt, side by side; off-palette colours beside the brand's palette
            item = await (await client.get("/review/item/r-1")).text()
            assert re.findall(r"<h2>attempt (\d)", item) == ["1", "2"]
            assert item.count('data-color="#c81e1e"') == 2
            brand = re.findall(r"brand: (.*?)</div>", item, re.S)
            assert len(brand) == 2
            assert re.findall(r'data-color="(#[0-9a-f]{6})"', brand[0]) == ["#e4002b", "#0a0a0a"]
            # no profile, no brand palette to show (the swatches still are)
            other = await (await client.get("/review/item/r-3")).text()
            assert 'data-color="#c81e1e"' in other
            assert "brand: " not in other
            # the prohibited term highlighted where the check found it
            copy = await (await client.get("/review/item/c-1")).text()
            preview = copy.split('class="preview">')[1].split("</pre>")[0]
            assert preview == COPY.replace("FREE", "<mark>FREE</mark>")
            assert (await client.get("/review/item/nope")).status == 404

    asyncio.run(go())
