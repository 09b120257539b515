"""The console's Timeline and Campaigns pages in a real browser (headless Chromium from
Debian), against a real broker and a real worker: requests the worker delivered (and one it
failed) are followed into the console's index; signed in, the timeline of a delivered request
shows every hop in time order with its image actually loaded, the nav's search box finds it,
and the campaigns page counts the campaign by status and reason, linking to the timelines.
Screenshots: ``CONSOLE_SCREENSHOTS_DIR`` (as in test_console.py)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from assetline.client import LineClient
from assetline.console.auth import UsersFile
from assetline.dev.child_worker import WorkerProcess
from schemas.records import (
    AssetCompleted,
    AssetKind,
    CompletionStatus,
    Constraints,
    GenerationRequest,
    ModelSpec,
)
from streams.settings import Settings
from tests.integration.helpers import submit_requests
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
USER, PASSWORD = "ana", "ana-pass-1"
HOPS = ["requested", "generated", "validated", "delivered", "completed"]


def _requests(run: str, campaign: str) -> list[GenerationRequest]:
    images = [
        GenerationRequest(
            request_id=f"{run}-img-{i}",
            idempotency_key=f"{run}-img-{i}",
            tenant="acme",
            campaign_id=campaign,
            kind=AssetKind.IMAGE,
            prompt_template="Autumn banner for ${persona}",
            variables={"persona": f"persona-{i}"},
            constraints=Constraints(width=320, height=200, format="png"),
        )
        for i in range(2)
    ]
    broken = GenerationRequest(  # no such alias: the line completes it FAILED with a code
        request_id=f"{run}-bad",
        idempotency_key=f"{run}-bad",
        tenant="acme",
        campaign_id=campaign,
        kind=AssetKind.TEXT,
        prompt_template="Copy for ${persona}",
        variables={"persona": "runners"},
        model=ModelSpec(alias="no-such-alias"),
    )
    return [*images, broken]


def _wait(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    return wait_for(predicate, timeout, what)


@needs_browser
def test_timeline_and_campaigns_in_the_browser(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    start_console: Callable[[Settings], ConsoleProcess],
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    users = UsersFile(tmp_path / "console-users")
    users.add(USER, PASSWORD)
    settings = line_settings.model_copy(
        update={
            "console_users_file": users.path,
            "console_secret": SecretStr("console-test-secret"),
            "console_trace_url": "https://jaeger.example/trace/{trace_id}",
        }
    )
    run = tmp_path.name[-6:]
    campaign = f"autumn-{run}"
    requests = _requests(run, campaign)
    ids = {r.request_id for r in requests}
    worker = start_worker(settings)
    asyncio.run(submit_requests(settings, requests))

    async def completions() -> dict[str, AssetCompleted]:
        async with LineClient(settings) as client:
            return await client.await_completions(ids, timeout=120)

    done = asyncio.run(completions())
    assert set(done) == ids, worker.log_tail()
    delivered = sorted(r for r, c in done.items() if c.status is CompletionStatus.DELIVERED)
    assert len(delivered) == 2, {r: (c.status, c.reasons) for r, c in done.items()}
    assert done[f"{run}-bad"].status is CompletionStatus.FAILED
    target = delivered[0]

    console = start_console(settings)
    http = signed_in_http(console.url, USER, PASSWORD, "/requests")
    # the console follows the topics: wait until its index has every completion
    _wait(
        lambda: all(http.get(f"/requests/{rid}?format=json").json().get("status") for rid in ids),
        timeout=60,
        what="the console's index to hold the completions",
    )
    started = time.perf_counter()
    answer = http.get(f"/requests/{target}?format=json")
    took_ms = (time.perf_counter() - started) * 1000
    body = answer.json()
    assert body["trace_id"]
    assert body["trace_url"] == f"https://jaeger.example/trace/{body['trace_id']}"
    print(f"\ntimeline JSON round trip: {took_ms:.1f} ms ({len(body['events'])} events)")

    shots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with chromium(tmp_path / "chrome") as driver:
        driver.get(console.url + f"requests/{target}")
        assert "/signin" in driver.current_url  # a timeline needs a session too
        driver.find_element(By.ID, "user").send_keys(USER)
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "signin").click()
        _wait(
            arrived(driver, lambda url: f"/requests/{target}" in url), what="back on the timeline"
        )

        kinds = [
            row.get_attribute("data-kind")
            for row in driver.find_elements(By.CSS_SELECTOR, "#events tr.event")
        ]
        assert [k for k in kinds if k in HOPS] == HOPS, kinds
        times = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "#events td.time")]
        assert times == sorted(times)
        assert driver.find_element(By.ID, "status").text == "DELIVERED"
        summary = driver.find_element(By.ID, "events").text
        assert "offline/" in summary  # provider/model of the call
        assert "delivered to " in summary
        link = driver.find_element(By.CSS_SELECTOR, "#trace a")
        assert link.get_attribute("href") == body["trace_url"]
        image = driver.find_element(By.ID, "asset-image")
        assert image.get_attribute("src").endswith(f"/assets/{target}/1/thumb")
        _wait(
            lambda: driver.execute_script(
                "const i = document.getElementById('asset-image');"
                "return i.complete && i.naturalWidth > 0;"
            ),
            what="the asset's image to load",
        )
        driver.save_screenshot(str(shots / "console-timeline.png"))

        # the nav's search box: another request's timeline by id
        box = driver.find_element(By.ID, "search")
        box.send_keys(f"{run}-bad", Keys.ENTER)
        _wait(arrived(driver, lambda url: f"/requests/{run}-bad" in url), what="search result")
        assert driver.find_element(By.ID, "status").text == "FAILED"
        assert "routing.unknown_alias" in driver.find_element(By.ID, "events").text

        driver.get(console.url + "campaigns")
        row = driver.find_element(By.CSS_SELECTOR, f'tr[data-campaign="{campaign}"]')
        assert row.find_element(By.CSS_SELECTOR, ".n-requests").text == "3"
        assert row.find_element(By.CSS_SELECTOR, ".n-completed").text == "3"
        cell = row.find_element(By.CSS_SELECTOR, 'td[data-status="DELIVERED"]')
        assert cell.text == "2"
        assert row.find_element(By.CSS_SELECTOR, 'td[data-status="FAILED"]').text == "1"
        assert "routing.unknown_alias: 1" in row.text
        driver.save_screenshot(str(shots / "console-campaigns.png"))

        cell.find_element(By.TAG_NAME, "a").click()  # the delivered ones, each to its timeline
        _wait(arrived(driver, lambda url: "status=DELIVERED" in url), what="campaign page")
        listed = sorted(
            r.get_attribute("data-id")
            for r in driver.find_elements(By.CSS_SELECTOR, "#requests-list tr[data-id]")
        )
        assert listed == delivered
        driver.find_element(By.CSS_SELECTOR, f'tr[data-id="{target}"] a').click()
        _wait(
            arrived(driver, lambda url: f"/requests/{target}" in url), what="timeline from campaign"
        )
