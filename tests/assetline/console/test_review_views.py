"""The review pages over HTTP on 127.0.0.1, on a review index filled here (no broker): the
queue filters by tenant, campaign, profile and failed check, each on its own and together;
an item's page shows every attempt, the off-palette colours beside the brand's palette (read
from the profile) and the prohibited term highlighted where it was found. Issue 17's "resume
where you left": an item's page and its decision keep the queue's filter (next item of that
filter), and plain /review restores the signed-in user's last filter, never another user's."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from assetline.console import _signin, assets, review_memory, review_views
from assetline.console._app import CONSOLE, Page, create_app
from assetline.console.auth import UsersFile
from assetline.console.review_index import ReviewIndex
from assetline.console.review_memory import QueueMemory, Where
from assetline.console.review_nav import item_link, next_waiting
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
    UsersFile(users).add("bo", "bo-pass-2")
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


PASSWORDS = {"ana": "ana-pass-1", "bo": "bo-pass-2"}


async def _sign_in(client: Client, user: str = "ana") -> None:
    found = _CSRF.search(await (await client.get("/signin")).text())
    assert found is not None
    form = {"user": user, "password": PASSWORDS[user], "csrf": found.group(1), "next": "/review"}
    signed = await client.post("/signin", data=form, allow_redirects=False)
    assert signed.status == 303, await signed.text()


async def _shown(client: Client, **query: str) -> set[str]:
    html = await (await client.get("/review", params=query)).text()
    return set(re.findall(r'<article class="card" data-id="([^"]+)"', html))


def _app(settings: Settings) -> web.Application:
    codecs = Codecs.load()
    app = create_app(settings, PAGES, codecs=codecs)
    state = app[CONSOLE].state
    state[assets.INDEX_KEY] = _index(settings, codecs)
    state[assets.BLOBS_KEY] = open_blob_store(settings)
    state[assets.THUMBS_KEY] = assets.ThumbCache()
    state[review_views.SNIPPETS_KEY] = assets.ThumbCache()
    return app


def test_queue_filters_and_item_page(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    app = _app(settings)

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
            # (plain /review would resume at the last filter: page=1 asks for the whole queue)
            queue = await (await client.get("/review?page=1")).text()
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


def _links(html: str) -> dict[str, str]:
    """The item page's queue / previous / next links by id, query decoded."""
    return {
        name: unescape(href)
        for href, name in re.findall(
            r'<a href="([^"]+)" id="(queue-link|prev-item|next-item)"', html
        )
    }


def test_item_page_and_decision_keep_the_filters(tmp_path: Path) -> None:
    """Oldest first the queue is r-1 r-2 r-3 r-4 c-1; filtered by profile=brand it is r-1 r-4
    c-1, so r-4's neighbours are r-1 and c-1 there (r-3 and c-1 unfiltered)."""
    app = _app(_settings(tmp_path))
    index = app[CONSOLE].state[assets.INDEX_KEY]

    async def go() -> None:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await _sign_in(client)
            queue = await (await client.get("/review", params={"profile": "brand"})).text()
            opens = re.findall(r'<a class="open" href="([^"]+)"', queue)
            assert [unescape(o) for o in opens] == [
                f"/review/item/{rid}?profile=brand" for rid in ("r-1", "r-4", "c-1")
            ]
            item = await (await client.get("/review/item/r-4", params={"profile": "brand"})).text()
            assert _links(item) == {
                "queue-link": "/review?profile=brand&page=1",
                "prev-item": "/review/item/r-1?profile=brand",
                "next-item": "/review/item/c-1?profile=brand",
            }
            # the decision form carries the filter, so the server can go on within it
            form = item.split('id="decide"')[1].split("</form>")[0]
            assert '<input type="hidden" name="then" value="next">' in form
            assert '<input type="hidden" name="profile" value="brand">' in form
            unfiltered = await (await client.get("/review/item/r-4")).text()
            assert _links(unfiltered) == {
                "queue-link": "/review?page=1",
                "prev-item": "/review/item/r-3",
                "next-item": "/review/item/c-1",
            }

    asyncio.run(go())
    # after deciding r-4 (hidden from the queue at once), the next of the same filter
    chosen = {"profile": "brand"}
    order = review_views._order(index, chosen)
    assert order == ["r-1", "r-4", "c-1"]
    index.sent["r-4"] = object()  # what note_sending does; is_pending reads it
    assert next_waiting(order, "r-4", index.is_pending) == "c-1"
    assert item_link("c-1", chosen) == "/review/item/c-1?profile=brand"


def test_next_waiting_keeps_the_order_and_wraps_to_skipped_items() -> None:
    order = ["a", "b", "c", "d"]
    waiting = {"a", "c", "d"}
    assert next_waiting(order, "b", waiting.__contains__) == "c"
    waiting.discard("c")  # decided elsewhere meanwhile: skipped
    assert next_waiting(order, "b", waiting.__contains__) == "d"
    assert next_waiting(order, "d", waiting.__contains__) == "a"  # a was skipped, still waits
    assert next_waiting(order, "a", {"a"}.__contains__) is None  # only itself: back to queue
    assert next_waiting([], "a", waiting.__contains__) is None


def test_filters_restored_per_user_not_across_users(tmp_path: Path) -> None:
    app = _app(_settings(tmp_path))

    async def resume(client: Client) -> str:
        """Where ``/review`` with no query sends the signed-in user ('' when it shows itself)."""
        answer = await client.get("/review", allow_redirects=False)
        assert answer.status in (200, 303)
        return answer.headers.get("Location", "") if answer.status == 303 else ""

    async def go() -> None:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await _sign_in(client, "ana")
            assert await resume(client) == ""  # nothing remembered yet
            await client.get("/review", params={"tenant": "globex", "check": "image.size"})
            assert await resume(client) == "/review?tenant=globex&check=image.size&page=1"
            restored = await (await client.get("/review")).text()
            assert set(re.findall(r'data-id="([^"]+)"', restored)) == {"r-4"}
            assert '<a href="/review?page=1" id="clear-filters">clear filters</a>' in restored
            # clearing the filters is remembered too
            cleared = await (await client.get("/review?page=1")).text()
            assert "clear-filters" not in cleared
            assert await resume(client) == ""
            await client.get("/review", params={"campaign": "autumn"})
            assert await resume(client) == "/review?campaign=autumn&page=1"

            # ana signs out, bo signs in on the same browser: ana's filters are not his
            page = await (await client.get("/review?page=1")).text()
            token = re.search(r'data-csrf="([^"]+)"', page)
            assert token is not None
            signed_out = await client.post(
                "/signout", data={"csrf": token.group(1)}, allow_redirects=False
            )
            assert signed_out.status == 303
            await _sign_in(client, "bo")
            assert client.session.cookie_jar.filter_cookies(client.make_url("/review")).get(
                review_memory.COOKIE
            )
            assert await resume(client) == ""
            await client.get("/review", params={"profile": "brand"})
            assert await resume(client) == "/review?profile=brand&page=1"

    asyncio.run(go())


def test_queue_memory_reads_only_its_own_user() -> None:
    memory = QueueMemory(b"secret", review_views.FILTERS)
    where = Where({"tenant": "acme", "check": "palette.brand"}, 3)
    cookie = memory.dump("ana", where)
    assert memory.load("ana", cookie) == where
    assert memory.load("bo", cookie) is None
    assert QueueMemory(b"other secret", review_views.FILTERS).load("ana", cookie) is None
    assert memory.load("ana", None) is None
    # edited by hand (another user's name in it, or any byte changed): the signature fails
    payload, _, signature = cookie.partition(".")
    signed, _, last = cookie.rpartition(".")
    # A whole base64 digit: the signature's last digit carries padding bits a change may miss.
    assert memory.load("ana", f"{signed}.{'A' if last[0] != 'A' else 'B'}{last[1:]}") is None
    assert memory.load("ana", cookie.replace(payload, payload[::-1], 1)) is None
    assert signature
