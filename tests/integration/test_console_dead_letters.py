"""The console's dead-letters page in a real browser (headless Chromium from Debian), against a
real broker, worker and console process: signed in, the letters are listed by stage and code
with their keys, a code filter is chosen from its menu, one letter is inspected with the
producer's token masked, and the one box ticked is re-driven to its source, completing once.
The HTTP-level checks (CSRF, counts, re-driving twice) are in
tests/assetline/console/test_dead_letter_views.py. Screenshot: ``CONSOLE_SCREENSHOTS_DIR``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from assetline.console.auth import UsersFile
from assetline.dead_letter_view import DeadLetterView
from assetline.dev.child_worker import WorkerProcess
from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs
from tests.support.console import (
    SCREENSHOTS_ENV,
    ConsoleProcess,
    arrived,
    chromium,
    needs_browser,
    wait_for,
)
from tests.support.dead_letters import (
    TOKEN,
    completions,
    poison_and_park,
    text_request,
    wait_completions,
)

pytestmark = pytest.mark.integration
USER, PASSWORD = "ana", "ana-pass-1"


async def _letters(settings: Settings, count: int) -> None:
    view = DeadLetterView(settings)
    for _ in range(120):
        if len(await view.read()) >= count:
            return
        await asyncio.sleep(0.5)
    raise AssertionError("the worker did not dead-letter the poison message")


@needs_browser
def test_dead_letters_in_the_browser(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    start_console: Callable[[Settings], ConsoleProcess],
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    users = UsersFile(tmp_path / "console-users")
    users.add(USER, PASSWORD)
    settings = line_settings.model_copy(
        update={
            "console_users_file": users.path,
            "console_secret": SecretStr("console-test-secret"),
        }
    )
    asyncio.run(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)))
    worker = start_worker(settings)
    asyncio.run(poison_and_park(settings, [text_request("dlb-0"), text_request("dlb-1")]))
    asyncio.run(_letters(settings, 3))
    console = start_console(settings)
    shots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)

    def keys() -> list[str]:
        return [k.text for k in driver.find_elements(By.CSS_SELECTOR, "#letters td.key")]

    with chromium(tmp_path / "chrome") as driver:
        driver.get(console.url + "deadletters")
        assert "/signin" in driver.current_url
        driver.find_element(By.ID, "user").send_keys(USER)
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "signin").click()
        wait_for(arrived(driver, lambda url: url.endswith("/deadletters")), what="the dead letters")

        assert sorted(keys()) == ["bad-1", "dlb-0", "dlb-1"]
        counts = {
            tuple(td.text for td in row.find_elements(By.TAG_NAME, "td"))
            for row in driver.find_elements(By.CSS_SELECTOR, "#counts tbody tr")
        }
        assert ("generate", "generate.crashed", "2") in counts
        assert any(code == "codec.malformed" and n == "1" for _, code, n in counts), counts
        driver.save_screenshot(str(shots / "console-dead-letters.png"))

        # filter by code from its menu
        Select(driver.find_element(By.NAME, "code")).select_by_value("generate.crashed")
        driver.find_element(By.CSS_SELECTOR, "form.filters button").click()
        wait_for(arrived(driver, lambda url: "code=generate.crashed" in url), what="the filter")
        assert sorted(keys()) == ["dlb-0", "dlb-1"]

        # inspect the poison one: its producer's token is masked
        driver.get(console.url + "deadletters?key=bad-1")
        driver.find_element(By.CSS_SELECTOR, "#letters tr[data-position] td a").click()
        wait_for(arrived(driver, lambda url: "/deadletters/" in url), what="one letter")
        page = driver.find_element(By.TAG_NAME, "body").text
        assert "definitely not avro" in page
        assert TOKEN.split()[1] not in page
        assert "authorization" in page.lower()

        # re-drive the one ticked: dlb-0 completes as a new attempt, dlb-1 stays parked
        driver.get(console.url + "deadletters")
        row = driver.find_element(
            By.XPATH, "//table[@id='letters']//tr[td[@class='key' and text()='dlb-0']]"
        )
        row.find_element(By.CSS_SELECTOR, "input.sel").click()
        driver.find_element(By.ID, "redrive-selected").click()
        wait_for(
            lambda: "Re-drove 1 of 1" in driver.find_element(By.TAG_NAME, "body").text,
            30,
            "the re-drive's answer",
        )
    asyncio.run(wait_completions(settings, {"dlb-0": [1001]}, worker))
    assert "dlb-1" not in asyncio.run(completions(settings))
