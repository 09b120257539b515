"""The console in a real browser (headless Chromium from Debian), against a real broker and a
real worker: sign in, three images waiting for review with their thumbnails loaded, approve
one with the keyboard, reject one with a reason, bulk-approve the rest; their completions on
``.completed`` carry the reviewer; forged sessions, missing CSRF tokens and path-like asset ids
are refused. Also measured: the review page with 1,000 waiting items, and a decision's round
trip (key press -> decision on Kafka -> item gone from the page), as the median of several.
A decision on an item's page goes on to the next waiting item of the same filter, and plain
/review resumes at the reviewer's last filter. Screenshots: see SCREENSHOTS_ENV.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from assetline.client import LineClient
from assetline.console.auth import UsersFile
from assetline.dev.broker import free_ports
from assetline.dev.child_worker import WorkerProcess
from assetline.review import load_items, new_decision, send_decision
from schemas.records import (
    AssetKind,
    CheckResult,
    CompletionStatus,
    Constraints,
    GenerationRequest,
    RawAsset,
    ReviewAction,
    ReviewItem,
    ReviewStatus,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from streams.blobs import open_blob_store
from streams.codecs import Codecs
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from tests.integration.helpers import read_topic, submit_requests
from tests.support.console import (
    SCREENSHOTS_ENV,
    ConsoleProcess,
    arrived,
    chromium,
    needs_browser,
    signed_in_http,
    wait_for,
)

pytestmark = pytest.mark.integration
PASSWORDS = {"ana": "ana-pass-1", "bo": "bo-pass-2"}
# Offline images are not brand red: every attempt fails the palette (repairable), so each
# request is generated twice and then waits for a person with both attempts to compare.
PROFILE = """\
id: brand
max_attempts: 2
review: true
palette:
  colors: ["#E4002B", "#FFFFFF"]
  max_delta_e: 10
  min_share: 0.8
text:
  prohibited: ["free"]
"""


@pytest.fixture
def console_settings(line_settings: Settings, tmp_path: Path) -> Settings:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "brand.yaml").write_text(PROFILE)
    users = UsersFile(tmp_path / "console-users")
    for user, password in PASSWORDS.items():
        users.add(user, password)
    return line_settings.model_copy(
        update={
            "profiles_dir": profiles,
            "console_users_file": users.path,
            "console_secret": SecretStr("console-test-secret"),
        }
    )


def _image_requests(run: str, count: int, campaign: str = "spring") -> list[GenerationRequest]:
    return [
        GenerationRequest(
            request_id=f"{run}-{campaign}-img-{i}",
            idempotency_key=f"{run}-{campaign}-img-{i}",
            tenant="acme",
            campaign_id=campaign,
            kind=AssetKind.IMAGE,
            prompt_template="Spring banner for ${persona}",
            variables={"persona": f"persona-{i}"},
            constraints=Constraints(width=320, height=200, format="png"),
            brand_profile_id="brand",
        )
        for i in range(count)
    ]


def _copy_request(request_id: str) -> GenerationRequest:
    return GenerationRequest(
        request_id=request_id,
        idempotency_key=request_id,
        tenant="acme",
        campaign_id="spring",
        kind=AssetKind.TEXT,
        prompt_template="Copy for ${persona}",
        variables={"persona": "runners", "headline": "Totally FREE shoes"},
        brand_profile_id="brand",
    )


def _wait_pending(settings: Settings, ids: set[str], timeout: float) -> dict[str, ReviewItem]:
    deadline = time.monotonic() + timeout
    while True:
        items = asyncio.run(load_items(settings, Codecs.load()))
        pending = {k: v for k, v in items.items() if k in ids and v.status is ReviewStatus.PENDING}
        if len(pending) == len(ids) or time.monotonic() > deadline:
            return pending
        time.sleep(0.5)


def _sign_in(driver: Any, url: str, user: str, screenshot: Path | None = None) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "review")
    assert "/signin" in driver.current_url  # not signed in: sent to sign in first
    if screenshot is not None:
        driver.save_screenshot(str(screenshot))
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[user])
    driver.find_element(By.ID, "signin").click()


def _card_ids(driver: Any) -> list[str]:
    return list(
        driver.execute_script(
            "return Array.from(document.querySelectorAll('#grid .card')).map(c => c.dataset.id)"
        )
    )


def _http_session(url: str, user: str) -> tuple[httpx.Client, str]:
    """A signed-in HTTP client and its session CSRF token."""
    client = signed_in_http(url, user, PASSWORDS[user])
    csrf = re.search(r'data-csrf="([^"]+)"', client.get("/review").text)
    assert csrf
    return client, csrf.group(1)


@needs_browser
def test_review_in_the_browser(
    console_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    start_console: Callable[[Settings], ConsoleProcess],
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    settings = console_settings
    worker = start_worker(settings)
    requests = _image_requests(tmp_path.name[-6:], 3)
    ids = {r.request_id for r in requests}
    # a second campaign: the filter the item pages and the remembered queue keep
    summer_requests = _image_requests(tmp_path.name[-6:], 6, "summer")
    summer = {r.request_id for r in summer_requests}
    asyncio.run(submit_requests(settings, [*requests, *summer_requests]))
    pending = _wait_pending(settings, ids | summer, timeout=120)
    assert set(pending) == ids | summer, worker.log_tail()
    console = start_console(settings)

    shots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with chromium(tmp_path / "chrome") as driver:
        _sign_in(driver, console.url, "ana", shots / "console-signin.png")
        wait_for(lambda: len(_card_ids(driver)) == 9, what="nine cards")
        assert driver.find_element(By.ID, "who").text == "ana"
        # the spring campaign only; from now on plain /review resumes at this filter
        driver.get(console.url + "review?campaign=spring")
        wait_for(lambda: len(_card_ids(driver)) == 3, what="three cards")
        # every thumbnail really loaded (decoded by the browser, not a broken image)
        wait_for(
            lambda: driver.execute_script(
                "const i = Array.from(document.querySelectorAll('#grid img.thumb'));"
                "return i.length === 3 && i.every(x => x.complete && x.naturalWidth > 0);"
            ),
            what="three loaded thumbnails",
        )
        driver.save_screenshot(str(shots / "console-review.png"))

        # the detail page: both attempts side by side, the palette failure explained
        first = _card_ids(driver)[0]
        driver.get(console.url + f"review/item/{first}")
        attempts = driver.find_elements(By.CSS_SELECTOR, ".attempt")
        assert len(attempts) == 2
        assert driver.find_elements(By.CSS_SELECTOR, ".checks .fail .sw")  # colour swatches
        swatch = driver.execute_script(
            "return getComputedStyle(document.querySelector('.checks .fail .sw')).backgroundColor"
        )
        assert swatch.startswith("rgb")
        driver.save_screenshot(str(shots / "console-detail.png"))
        # ... and links to the request's timeline: both attempts generated, then held for review
        driver.find_element(By.ID, "timeline-link").click()
        wait_for(arrived(driver, lambda url: f"/requests/{first}" in url), what="the timeline")

        def held_for_review() -> bool:
            driver.refresh()  # the console's index may still be reading the topics
            rows = driver.find_elements(By.CSS_SELECTOR, "#events tr.event")
            kinds = [r.get_attribute("data-kind") for r in rows]
            return kinds.count("generated") == 2 and "sent_to_review" in kinds

        wait_for(held_for_review, what="the timeline with both attempts and the review")
        assert driver.find_element(By.ID, "status").text == "IN_REVIEW"

        driver.get(console.url + "review")  # no query: the remembered filter
        wait_for(lambda: len(_card_ids(driver)) == 3, what="three cards again")
        assert "campaign=spring" in driver.current_url
        assert driver.find_element(By.ID, "clear-filters").is_displayed()

        # live: copy with a prohibited term arrives while the page is open ...
        copy = _copy_request(requests[0].request_id + "-copy")
        asyncio.run(submit_requests(settings, [copy]))
        wait_for(lambda: copy.request_id in _card_ids(driver), 60, "the new item, live")
        assert driver.find_element(By.ID, "total").text == "10"  # all waiting, summer too
        live_card = driver.find_element(By.CSS_SELECTOR, f'.card[data-id="{copy.request_id}"]')
        assert "Totally FREE shoes" in live_card.text  # the asset's own text, not the prompt
        # ... its attempts show the matched spans highlighted
        driver.get(console.url + f"review/item/{copy.request_id}")
        marks = driver.find_elements(By.CSS_SELECTOR, ".preview mark")
        assert marks
        assert {m.text for m in marks} == {"FREE"}
        driver.save_screenshot(str(shots / "console-terms.png"))
        # ... and is decided elsewhere (the CLI's way): it leaves the open page by itself
        driver.get(console.url + "review")
        wait_for(lambda: len(_card_ids(driver)) == 4, what="four cards")
        elsewhere = new_decision(copy.request_id, ReviewAction.REJECT, "bo", "says free")
        asyncio.run(send_decision(settings, Codecs.load(), elsewhere))
        wait_for(lambda: copy.request_id not in _card_ids(driver), 30, "the item decided elsewhere")
        order = _card_ids(driver)
        assert len(order) == 3
        body = driver.find_element(By.TAG_NAME, "body")

        approve_ms: list[float] = []

        def approve_first() -> None:
            """'a' on the current (first) card; its round trip measured in the page, from
            the keydown to the card gone after Kafka's ack."""
            gone = _card_ids(driver)[0]
            driver.execute_script("window.__lastDecisionMs = null")
            driver.find_element(By.TAG_NAME, "body").send_keys("a")
            wait_for(lambda: gone not in _card_ids(driver), what="approved card gone")
            approve_ms.append(
                float(
                    wait_for(
                        lambda: driver.execute_script("return window.__lastDecisionMs"),
                        what="the answer",
                    )
                )
            )

        # approve the first with the keyboard: 'a' on the current card
        approve_first()

        # reject the next one: 'r', a reason, Enter
        body.send_keys("r")
        note = wait_for(lambda: driver.find_element(By.ID, "reject-note"), what="reason dialog")
        wait_for(lambda: note.is_displayed(), what="reason dialog shown")
        note.send_keys("colours off brand", Keys.ENTER)
        wait_for(lambda: order[1] not in _card_ids(driver), what="rejected card gone")

        # bulk-approve the rest: select all on the page, approve selected
        assert _card_ids(driver) == [order[2]]
        driver.find_element(By.ID, "all").click()
        driver.find_element(By.ID, "bulk-approve").click()
        wait_for(lambda: not _card_ids(driver), what="grid empty")
        assert driver.find_element(By.ID, "total").text == "6"  # summer's, not shown here

        # summer: Enter opens the current card's page, the filter kept in its query ...
        driver.get(console.url + "review?campaign=summer")
        wait_for(lambda: len(_card_ids(driver)) == 6, what="six summer cards")
        later = _card_ids(driver)
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ENTER)
        wait_for(
            arrived(driver, lambda url: f"/item/{later[0]}?campaign=summer" in url), what="item"
        )
        # ... and 'a' there approves it and lands on the next summer item, not the queue
        driver.find_element(By.TAG_NAME, "body").send_keys("a")
        wait_for(
            lambda: driver.current_url.endswith(f"/item/{later[1]}?campaign=summer"),
            what="the next waiting item of the filter",
        )
        assert driver.find_element(By.ID, "decide").get_attribute("data-id") == later[1]
        # back on the queue (remembered: summer), four more keyboard approvals timed
        driver.get(console.url + "review")
        wait_for(lambda: _card_ids(driver) == later[1:], what="the rest of summer")
        for _ in range(4):
            approve_first()
        # the last one rejected on its page: none left, so back on the filtered queue
        assert _card_ids(driver) == [later[5]]
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ENTER)
        wait_for(arrived(driver, lambda url: f"/item/{later[5]}?" in url), what="the last item")
        driver.find_element(By.TAG_NAME, "body").send_keys("r")
        wait_for(lambda: driver.switch_to.active_element.get_attribute("id") == "note", what="note")
        driver.switch_to.active_element.send_keys("too dark", Keys.ENTER)
        wait_for(
            lambda: driver.current_url.endswith("/review?campaign=summer&page=1"),
            what="the filtered queue, none left",
        )
        assert not _card_ids(driver)

    async def completions() -> dict[str, Any]:
        async with LineClient(settings) as client:
            return await client.await_completions(ids, timeout=60)

    done = asyncio.run(completions())
    assert set(done) == ids, worker.log_tail()
    ids.add(copy.request_id)
    done = asyncio.run(completions())
    copy_done = done[copy.request_id]
    assert copy_done.status is CompletionStatus.REJECTED
    assert copy_done.review is not None
    assert copy_done.review.reviewer == "bo"
    del done[copy.request_id]
    assert done[order[0]].status is CompletionStatus.DELIVERED
    assert done[order[1]].status is CompletionStatus.REJECTED
    assert done[order[2]].status is CompletionStatus.DELIVERED
    for completed in done.values():
        assert completed.review is not None
        assert completed.review.reviewer == "ana"
    assert done[order[1]].review is not None
    assert done[order[1]].review.note == "colours off brand"
    ids = summer
    done = asyncio.run(completions())
    assert set(done) == summer, worker.log_tail()
    assert [done[r].status for r in later] == [CompletionStatus.DELIVERED] * 5 + [
        CompletionStatus.REJECTED
    ]
    assert {c.review.reviewer for c in done.values() if c.review} == {"ana"}
    assert all(c.review for c in done.values())
    # one round trip measured under load was 282.8 ms: the target holds for the median
    median = sorted(approve_ms)[len(approve_ms) // 2]
    print(
        "\nkeyboard approve round trip (key press -> Kafka ack -> card gone), "
        f"{len(approve_ms)} decisions: median {median:.1f} ms, "
        f"all {', '.join(f'{m:.0f}' for m in approve_ms)} ms"
    )
    assert median < 300


def test_refusals(
    console_settings: Settings,
    start_console: Callable[[Settings], ConsoleProcess],
) -> None:
    console = start_console(console_settings)
    url = console.url
    ana, ana_csrf = _http_session(url, "ana")
    bo, bo_csrf = _http_session(url, "bo")
    decide = {"id": "some-request", "action": "approve"}

    # nobody signed in: pages redirect to sign-in, data and assets are 401
    anonymous = httpx.Client(base_url=url)
    assert anonymous.get("/review", headers={"Accept": "text/html"}).status_code == 303
    assert anonymous.get("/assets/x/1/thumb").status_code == 401
    assert anonymous.get("/review/events").status_code == 401
    # a POST without a CSRF token, or with another user's token, is refused
    assert ana.post("/review/decide", data=decide).status_code == 403
    assert ana.post("/review/decide", data={**decide, "csrf": bo_csrf}).status_code == 403
    assert (
        ana.post("/review/decide", data=decide, headers={"X-CSRF-Token": bo_csrf}).status_code
        == 403
    )
    # bo's cookie with ana's CSRF token: the token belongs to another session
    assert bo.post("/review/decide", data={**decide, "csrf": ana_csrf}).status_code == 403
    # a session cookie edited to name another user fails its signature
    cookie = ana.cookies.get("assetline_session")
    assert cookie
    forged = httpx.Client(base_url=url, cookies={"assetline_session": cookie.replace("a", "b", 1)})
    assert forged.get("/review/events").status_code == 401
    # with the right token the request gets through to the review logic (no such item: 409)
    assert ana.post("/review/decide", data={**decide, "csrf": ana_csrf}).status_code == 303
    refused = ana.post(
        "/review/decide",
        data={**decide, "csrf": ana_csrf},
        headers={"Accept": "application/json"},
    )
    assert refused.status_code == 409
    assert "some-request" in refused.json()["refused"]
    # a reject needs a reason
    assert (
        ana.post(
            "/review/decide", data={**decide, "action": "reject", "csrf": ana_csrf}
        ).status_code
        == 400
    )
    # asset ids are looked up, never used as paths
    for bad in ("..%2F..%2Fetc%2Fpasswd/1", "..%5C..%5Cboot.ini/1", "%2E%2E/1", "a%00b/1"):
        assert ana.get(f"/assets/{bad}").status_code in (400, 404), bad
    assert ana.get("/assets/../../etc/passwd").status_code in (400, 404)
    assert ana.get("/assets/unknown/1").status_code == 404
    # signing out ends the session for good (the same cookie is refused afterwards)
    assert ana.post("/signout", data={"csrf": ana_csrf}).status_code == 303
    replay = httpx.Client(base_url=url, cookies={"assetline_session": cookie})
    assert replay.get("/review/events").status_code == 401
    # password guessing: after 10 failures in 5 minutes a name is refused, right or wrong
    guesser = httpx.Client(base_url=url)
    token = re.search(r'name="csrf" value="([^"]+)"', guesser.get("/signin").text)
    assert token
    guesses = [
        guesser.post(
            "/signin", data={"user": "bo", "password": f"guess-{i}", "csrf": token.group(1)}
        ).status_code
        for i in range(11)
    ]
    assert guesses == [401] * 10 + [429]
    right = {"user": "bo", "password": PASSWORDS["bo"], "csrf": token.group(1)}
    assert guesser.post("/signin", data=right).status_code == 429
    # security headers on every answer
    page = bo.get("/review")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in page.text
    assert " style=" not in page.text


def _synthetic_items(settings: Settings, count: int) -> list[str]:
    """``count`` pending review items written straight to ``.review.items`` (what the review
    stage writes), with real PNG blobs of a few colours in the blob store."""
    import io

    from PIL import Image

    store = open_blob_store(settings)
    refs = []
    for colour in ((200, 30, 30), (30, 160, 60), (40, 60, 200), (240, 200, 0)):
        out = io.BytesIO()
        Image.new("RGB", (640, 400), colour).save(out, "PNG")
        refs.append(store.put(out.getvalue(), "image/png"))
    codecs = Codecs.load()
    start = datetime.now(UTC) - timedelta(hours=1)
    values = []
    for i in range(count):
        request = GenerationRequest(
            request_id=f"load-{i:05d}",
            idempotency_key=f"load-{i:05d}",
            tenant=("acme", "globex")[i % 2],
            campaign_id=f"campaign-{i % 5}",
            kind=AssetKind.IMAGE,
            prompt_template="Banner",
            brand_profile_id="brand",
        )
        raw = RawAsset(
            request=request,
            blob=refs[i % len(refs)],
            provider="offline",
            model_version="offline-1",
            latency_ms=1.0,
        )
        report = ValidationReport(
            verdict=Verdict.FAIL,
            profile="brand",
            checks=[
                CheckResult(
                    code=("palette.brand", "image.size")[i % 2],
                    passed=False,
                    message="only 0.0% of pixels within ΔE 10 of the brand palette (need 80.0%); "
                    "off-palette: #c81e1e 100.0% (nearest #e4002b, ΔE 12.3)",
                )
            ],
        )
        item = ReviewItem(
            request_id=request.request_id,
            status=ReviewStatus.PENDING,
            asset=ValidatedAsset(raw=raw, report=report),
            queued_at=start + timedelta(milliseconds=i),
        )
        values.append((request.request_id, codecs.review_item.encode(item)))

    async def send() -> None:
        await ensure_topics(settings, line_topic_specs(settings))
        topic = TopicNames.with_prefix(settings.topic_prefix).review_items
        async with LineClient(settings, codecs) as client:
            await asyncio.gather(
                *(client.send_raw(topic, key.encode(), value) for key, value in values)
            )

    asyncio.run(send())
    return [key for key, _ in values]


@needs_browser
def test_a_thousand_waiting_items_render_paged_quickly(
    console_settings: Settings,
    start_console: Callable[[Settings], ConsoleProcess],
    tmp_path: Path,
) -> None:
    ids = _synthetic_items(console_settings, 1000)
    console = start_console(console_settings)
    client, _csrf = _http_session(console.url, "ana")
    wait_for(lambda: f">{len(ids)}<" in client.get("/review").text, 30, "1,000 items indexed")

    server_ms = []
    for _ in range(5):
        started = time.perf_counter()
        page = client.get("/review")
        server_ms.append((time.perf_counter() - started) * 1000)
        assert page.status_code == 200
    # each filter narrows the queue (tenant and check go together in these items: i % 2)
    for query, matching in (
        ({"tenant": "globex"}, 500),
        ({"campaign": "campaign-1"}, 200),
        ({"tenant": "globex", "campaign": "campaign-1"}, 100),
        ({"tenant": "globex", "check": "image.size"}, 500),
        ({"tenant": "globex", "check": "palette.brand"}, 0),
        ({"profile": "brand"}, 1000),
        ({"profile": "other"}, 0),
    ):
        filtered = client.get("/review", params=query)
        assert f"· {matching} matching" in filtered.text, query
    # asset bytes: the PNG itself, sandboxed; thumbnails are WebP
    original = client.get("/assets/load-00000/1")
    assert original.headers["Content-Type"] == "image/png"
    assert "sandbox" in original.headers["Content-Security-Policy"]
    assert original.content.startswith(b"\x89PNG")
    assert client.get("/assets/load-00000/1/thumb").content[8:12] == b"WEBP"
    assert client.get("/assets/load-00000/2").status_code == 404  # no such attempt

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with chromium(tmp_path / "chrome") as driver:
        _sign_in(driver, console.url, "ana")
        wait_for(lambda: len(_card_ids(driver)) == 48, what="first page of cards")
        browser_ms = []
        for page_no in (1, 11, 21):
            driver.get(console.url + f"review?page={page_no}")
            # thumbnails load lazily: the page is there when every one on the first screen
            # is decoded; performance.now() is the time since this navigation started
            at = wait_for(
                lambda: driver.execute_script(
                    "const i = Array.from(document.querySelectorAll('#grid img.thumb'))"
                    "  .filter(x => x.getBoundingClientRect().top < innerHeight);"
                    "return i.length >= 8 && i.every(x => x.complete && x.naturalWidth > 0)"
                    "  && performance.now();"
                ),
                what="thumbnails loaded",
            )
            browser_ms.append(float(at))
        driver.get(console.url + "review")  # resumes at the last page seen: 21, the last
        wait_for(arrived(driver, lambda url: "page=21" in url), what="the remembered page")
        driver.get(console.url + "review?page=1")
        wait_for(lambda: len(_card_ids(driver)) == 48, what="first page again")

        def current() -> str:
            return str(
                driver.execute_script("return document.querySelector('.card.cur').dataset.id")
            )

        # j / k move through the cards (next / previous)
        first_two = _card_ids(driver)[:2]
        body = driver.find_element(By.TAG_NAME, "body")
        assert current() == first_two[0]
        body.send_keys("j")
        wait_for(lambda: current() == first_two[1], what="j: the next card")
        body.send_keys("k")
        wait_for(lambda: current() == first_two[0], what="k: the previous card")

        # round trip of a keyboard decision, 10 times: key press -> Kafka ack -> card gone
        trips = []
        for _ in range(10):
            before = _card_ids(driver)[0]
            started = time.perf_counter()
            body.send_keys("a")
            wait_for(lambda gone=before: gone not in _card_ids(driver), what="card gone")
            trips.append((time.perf_counter() - started) * 1000)
        wait_for(lambda: driver.execute_script("return window.__decisions") == 10, what="answers")
        in_page = driver.execute_script("return window.__lastDecisionMs")

        # an item's page: j / k open the next / previous waiting item
        driver.get(console.url + "review/item/load-00499")
        driver.find_element(By.TAG_NAME, "body").send_keys("j")
        wait_for(arrived(driver, lambda url: url.endswith("/item/load-00500")), what="j: next item")
        driver.find_element(By.TAG_NAME, "body").send_keys("k")
        wait_for(arrived(driver, lambda url: url.endswith("/item/load-00499")), what="k: previous")
        driver.find_element(By.TAG_NAME, "body").send_keys("j")
        wait_for(arrived(driver, lambda url: url.endswith("/item/load-00500")), what="j again")
        # 'r', a reason, Enter rejects (Enter never means the approve button)
        driver.find_element(By.TAG_NAME, "body").send_keys("r")
        wait_for(lambda: driver.switch_to.active_element.get_attribute("id") == "note", what="note")
        driver.switch_to.active_element.send_keys("blurry", Keys.ENTER)
        wait_for(
            arrived(driver, lambda url: url.endswith("/item/load-00501")), what="on to the next"
        )

    decisions = asyncio.run(
        read_topic(
            console_settings,
            TopicNames.with_prefix(console_settings.topic_prefix).review_decisions,
            min_messages=11,
            timeout=10,
        )
    )
    assert len(decisions) == 11
    codecs = Codecs.load()
    by_id = {d.key.decode(): codecs.review_decision.decode(d.value) for d in decisions}  # type: ignore[attr-defined]
    assert by_id["load-00500"].action is ReviewAction.REJECT
    assert by_id["load-00500"].note == "blurry"
    assert {d.reviewer for d in by_id.values()} == {"ana"}
    print(
        f"\n/review with 1,000 waiting: server {min(server_ms):.1f}-{max(server_ms):.1f} ms; "
        f"in the browser, first screen of thumbnails loaded: "
        f"{', '.join(f'{m:.0f}' for m in browser_ms)} ms; "
        f"decision round trip (webdriver key -> card gone): "
        f"median {sorted(trips)[len(trips) // 2]:.0f} ms, max {max(trips):.0f} ms; "
        f"in-page keydown -> gone: {in_page:.1f} ms"
    )
    assert max(server_ms) < 1000
    assert sorted(browser_ms)[1] < 1000
    assert sorted(trips)[len(trips) // 2] < 300


def test_a_trusted_proxy_header_signs_users_in(
    console_settings: Settings,
    start_console: Callable[[Settings], ConsoleProcess],
) -> None:
    settings = console_settings.model_copy(
        update={"console_users_file": None, "console_proxy_user_header": "X-Remote-User"}
    )
    url = start_console(settings).url
    carol = httpx.Client(base_url=url, headers={"X-Remote-User": "carol", "Accept": "text/html"})
    page = carol.get("/review")
    assert page.status_code == 200
    assert '<span class="who" id="who">carol</span>' in page.text
    csrf = re.search(r'data-csrf="([^"]+)"', page.text)
    assert csrf
    # the header alone is not enough for a POST: the session's CSRF token is still needed
    decide = {"id": "x", "action": "approve"}
    assert carol.post("/review/decide", data=decide).status_code == 403
    assert carol.post("/review/decide", data={**decide, "csrf": csrf.group(1)}).status_code == 303
    # carol's cookie sent with another user's header is dave's session, not carol's
    dave = httpx.Client(
        base_url=url, headers={"X-Remote-User": "dave"}, cookies=dict(carol.cookies.items())
    )
    assert dave.post("/review/decide", data={**decide, "csrf": csrf.group(1)}).status_code == 403
    assert httpx.get(url + "review/events", headers={"X-Remote-User": "../x"}).status_code == 403
    assert httpx.get(url + "review/events").status_code == 401  # no header, no cookie


def test_host_and_port_options_win_over_the_environment(
    console_settings: Settings, tmp_path: Path
) -> None:
    """``assetline console --host H --port P``: the environment says port 0 (any free port);
    the options name the port the console listens on."""
    (port,) = free_ports(1)
    console = ConsoleProcess(
        console_settings, tmp_path / "console.log", ["--host", "127.0.0.1", "--port", str(port)]
    )
    try:
        console.start()
        assert console.url == f"http://127.0.0.1:{port}/", console.log_tail()
        signin = httpx.get(console.url + "signin")
        assert signin.status_code == 200
        assert 'id="password"' in signin.text
    finally:
        console.stop()
