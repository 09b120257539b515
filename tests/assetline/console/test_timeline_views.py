"""The console's timeline and campaign pages over HTTP on 127.0.0.1: a request's events in
time order with its asset served by hash from the blob store, the trace linked, JSON for
tools; campaigns counted by status and reason with links to each request's timeline; sign-in
required, path-like ids refused. The last test follows a real broker's topics."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import re
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from PIL import Image

from assetline.console import _signin, timeline_views
from assetline.console._app import CONSOLE, Page, create_app
from assetline.console.auth import UsersFile
from assetline.console.pages import create_console
from assetline.dev.broker import free_ports
from assetline.timeline import RequestIndex, TopicKind, campaign_progress, line_topic_kinds
from schemas.records import CompletionStatus
from streams.blobs import open_blob_store
from streams.codecs import Codecs
from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs
from tests.support.request_events import (
    TRACE_ID,
    TRACEPARENT,
    Record,
    completed,
    dead_letter,
    delivered_story,
    failed_story,
    raw,
    request,
    review_story,
    validated,
)

PAGES = [
    Page("", "/signin", _signin.routes),
    Page("Timeline", "/requests", timeline_views.routes),
    Page("Campaigns", "/campaigns", timeline_views.campaign_routes),
]
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
START = 1_800_000_000_000
Client = TestClient[web.Request, web.Application]


def _settings(tmp_path: Path, **more: object) -> Settings:
    users = tmp_path / "users"
    UsersFile(users).add("ana", "ana-pass-1")
    (port,) = free_ports(1)  # nothing listens: these pages never need the broker
    return Settings(
        kafka_bootstrap=f"127.0.0.1:{port}",
        topic_prefix="tl",
        console_users_file=users,
        blob_dir=tmp_path / "blobs",
        **more,  # type: ignore[arg-type]
    )


async def _sign_in(client: Client) -> None:
    page = await client.get("/signin")
    found = _CSRF.search(await page.text())
    assert found is not None
    form = {"user": "ana", "password": "ana-pass-1", "csrf": found.group(1), "next": "/requests"}
    signed = await client.post("/signin", data=form, allow_redirects=False)
    assert signed.status == 303, await signed.text()


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 40), (200, 30, 40)).save(out, format="PNG")
    return out.getvalue()


def _delivered_with_blob(codecs: Codecs, settings: Settings, rid: str) -> list[Record]:
    """A delivered story whose generated asset is a real PNG in the console's blob store."""
    store = open_blob_store(settings)
    ref = store.put(_png(), "image/png")
    req = request(rid)
    asset = raw(req).model_copy(update={"blob": ref})
    done = completed(req)
    key, h = rid.encode(), [("traceparent", TRACEPARENT)]
    return [  # out of time order on purpose: the topics are read in parallel
        Record(TopicKind.COMPLETED, key, codecs.completed.encode(done), h, START + 30),
        Record(TopicKind.REQUESTS, key, codecs.request.encode(req), h, START),
        Record(TopicKind.APPROVED, key, codecs.validated.encode(validated(asset)), h, START + 20),
        Record(TopicKind.RAW, key, codecs.raw.encode(asset), h, START + 10),
    ]


def _index(codecs: Codecs, settings: Settings) -> RequestIndex:
    index = RequestIndex(codecs)
    records = _delivered_with_blob(codecs, settings, "tl-1")
    records += delivered_story(codecs, "tl-2", START + 100, "spring")
    records += review_story(codecs, "tl-3", START + 200, "spring")
    records += failed_story(codecs, "tl-4", START + 300, "routing.unknown_provider: no", "autumn")
    records.append(dead_letter("tl-4", START + 301))
    for r in records:
        index.apply(r.topic, r.key, r.value, r.headers, r.timestamp)
    return index


def test_timeline_and_campaign_pages(tmp_path: Path) -> None:
    settings = _settings(tmp_path, console_trace_url="https://jaeger.example/trace/{trace_id}")
    codecs = Codecs.load()
    app = create_app(settings, PAGES, codecs=codecs)
    app[CONSOLE].state[timeline_views.INDEX_KEY] = _index(codecs, settings)

    async def go() -> None:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            gated = await client.get(
                "/requests/tl-1", allow_redirects=False, headers={"Accept": "text/html"}
            )
            assert gated.status == 303
            assert gated.headers["Location"].startswith("/signin")
            await _sign_in(client)
            await _timeline(client)
            await _campaigns(client)
            assert (await client.get("/requests/..%2Fetc", allow_redirects=False)).status in (
                400,
                404,
            )
            assert (await client.get("/assets/tl-1/2")).status == 404  # no such attempt
            found = await client.get("/requests?id=tl-2", allow_redirects=False)
            assert found.status == 303
            assert found.headers["Location"] == "/requests/tl-2"
            listing = await (await client.get("/requests")).text()
            assert "/requests/tl-4" in listing
            assert 'id="search"' in listing

    asyncio.run(go())


async def _timeline(client: Client) -> None:
    page = await client.get("/requests/tl-1")
    assert page.status == 200
    html = await page.text()
    kinds = re.findall(r'<tr class="event" data-kind="([a-z_]+)">', html)
    assert kinds == ["requested", "generated", "validated", "delivered", "completed"]
    assert "offline/offline-image-1: ok, $0.0200" in html  # provider/model/cost per call
    assert "delivered to file:///deliveries/acme/tl-1.png" in html
    assert f'<a href="https://jaeger.example/trace/{TRACE_ID}"' in html
    assert 'src="/assets/tl-1/1/thumb"' in html
    assert "file:///" not in html.split("events")[0]
    thumb = await client.get("/assets/tl-1/1/thumb")
    assert thumb.status == 200
    assert thumb.content_type == "image/webp"
    full = await client.get("/assets/tl-1/1")
    assert full.status == 200
    assert await full.read() == _png()

    as_json = await client.get("/requests/tl-1?format=json")
    body = await as_json.json()
    assert [e["kind"] for e in body["events"]] == kinds
    assert body["status"] == "DELIVERED"
    assert body["trace_id"] == TRACE_ID
    assert body["trace_url"] == f"https://jaeger.example/trace/{TRACE_ID}"
    assert body["asset_url"] == "/assets/tl-1/1"
    by_accept = await client.get("/requests/tl-4", headers={"Accept": "application/json"})
    letters = [e for e in (await by_accept.json())["events"] if e["kind"] == "dead_letter"]
    assert letters
    assert letters[0]["details"]["code"] == "codec.malformed"
    dead = await (await client.get("/requests/tl-4")).text()
    assert 'href="/deadletters?key=tl-4"' in dead
    review = await (await client.get("/requests/tl-3")).text()
    assert 'id="status">IN_REVIEW<' in review
    assert "brand.palette" in review

    refreshing = await (await client.get("/requests/tl-3?refresh=5")).text()
    assert '<meta http-equiv="refresh" content="5">' in refreshing
    assert "http-equiv" not in review
    missing = await client.get("/requests/nope")
    assert missing.status == 404
    assert "No events for this request" in await missing.text()
    assert (await client.get("/requests/nope?format=json")).status == 404


async def _campaigns(client: Client) -> None:
    html = await (await client.get("/campaigns")).text()
    spring = re.search(r'<tr data-campaign="spring">(.*?)</tr>', html, re.S)
    assert spring is not None
    row = spring.group(1)
    assert '<td class="n-requests">3</td>' in row
    assert re.search(
        r'data-status="DELIVERED"><a href="/campaigns/spring\?status=DELIVERED">2<', row
    )
    assert re.search(
        r'data-status="IN_REVIEW"><a href="/campaigns/spring\?status=IN_REVIEW">1<', row
    )
    body = await (await client.get("/campaigns?format=json")).json()
    autumn = next(c for c in body["campaigns"] if c["campaign_id"] == "autumn")
    assert autumn["by_status"][CompletionStatus.FAILED.value] == 1
    assert autumn["failed_by_reason"] == {"routing.unknown_provider": 1}

    one = await (await client.get("/campaigns/autumn?reason=routing.unknown_provider")).text()
    assert 'href="/requests/tl-4"' in one
    delivered = await (await client.get("/campaigns/spring?status=DELIVERED")).text()
    listed = re.findall(r'<tr data-id="([^"]+)">', delivered)
    assert sorted(listed) == ["tl-1", "tl-2"]
    refreshed = await (await client.get("/campaigns/spring?refresh=5")).text()
    assert '<meta http-equiv="refresh" content="5">' in refreshed
    assert (await client.get("/campaigns/nope")).status == 404


def test_the_console_follows_the_topics_into_its_index(
    line_settings: Settings, tmp_path: Path
) -> None:
    """The whole console on a real broker: records written to the line's topics show up on
    the timeline; the follower is stopped with the app."""
    users = tmp_path / "users"
    UsersFile(users).add("ana", "ana-pass-1")
    settings = line_settings.model_copy(update={"console_users_file": users})
    codecs = Codecs.load()

    async def go() -> None:
        await ensure_topics(settings, line_topic_specs(settings))
        app = create_console(settings, codecs=codecs)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await _sign_in(client)
            names = {kind: name for name, kind in line_topic_kinds(settings).items()}
            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
            await producer.start()
            try:
                for r in delivered_story(codecs, "follow-1", int(time.time() * 1000)):
                    await producer.send_and_wait(
                        names[r.topic], r.value, key=r.key, headers=r.headers,
                        timestamp_ms=r.timestamp,
                    )  # fmt: skip
            finally:
                await producer.stop()
            body: dict[str, object] = {}
            for _ in range(100):
                answer = await client.get("/requests/follow-1?format=json")
                if answer.status == 200:
                    body = await answer.json()
                    if len(body["events"]) == 6:  # type: ignore[arg-type]
                        break
                await asyncio.sleep(0.2)
            kinds = [e["kind"] for e in body["events"]]  # type: ignore[attr-defined]
            assert kinds == ["requested", "generated", "validated", "delivered", "completed",
                             "webhook"], json.dumps(body)  # fmt: skip
            assert app[CONSOLE].state[timeline_views.FOLLOWER_KEY].caught_up.is_set()
        assert timeline_views.FOLLOWER_KEY not in app[CONSOLE].state  # stopped on cleanup

    asyncio.run(go())


def test_campaign_progress_is_computed_at_most_once_per_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Auto-refreshing campaign pages share one walk of the index per PROGRESS_FRESH_S."""
    settings = _settings(tmp_path)
    codecs = Codecs.load()
    console = create_app(settings, PAGES, codecs=codecs)[CONSOLE]
    index = console.state[timeline_views.INDEX_KEY] = _index(codecs, settings)
    first = timeline_views.progress_now(console)
    for r in delivered_story(codecs, "tl-5", START + 500, "spring"):
        index.apply(r.topic, r.key, r.value, r.headers, r.timestamp)
    assert timeline_views.progress_now(console) is first  # within the window: the same answer
    monkeypatch.setattr(timeline_views, "PROGRESS_FRESH_S", -1.0)
    spring = next(p for p in timeline_views.progress_now(console) if p.campaign_id == "spring")
    assert spring.requests == 4


def test_time_left_reads_as_a_duration_or_says_why_there_is_none(tmp_path: Path) -> None:
    """The campaigns page's "time left" cell (the estimate itself: test_progress.py)."""
    settings = _settings(tmp_path)
    index = _index(Codecs.load(), settings)
    spring = campaign_progress(index, "spring", now_ms=START + 1_000, window_s=60)
    eta = timeline_views.eta_text
    running = dataclasses.replace(spring, remaining=30, rate_per_s=0.5, eta_s=60.0)
    assert eta(running) == "~60 s"
    assert eta(dataclasses.replace(running, eta_s=59 * 60.0)) == "~59 min"
    assert eta(dataclasses.replace(running, eta_s=3 * 3600 + 25 * 60.0)) == "~3 h 25 min"
    stalled = dataclasses.replace(running, rate_per_s=0.0, eta_s=None)
    assert eta(stalled).startswith("unknown")
    finished = dataclasses.replace(running, remaining=0, eta_s=None, waiting_in_review=0)
    assert eta(finished) == "done"
    assert eta(dataclasses.replace(finished, waiting_in_review=2)) == "only review left"
