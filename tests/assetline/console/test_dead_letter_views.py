"""The console's dead-letter pages over HTTP on 127.0.0.1, against a real broker and worker:
sign-in required, the list with keys and counts, filters, one letter with its secrets masked,
and the selected letters re-driven (CSRF required) to their source, each completing once."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from assetline.console import _signin, dead_letter_views
from assetline.console._app import Page, create_app
from assetline.console.auth import UsersFile
from assetline.dead_letter_view import DeadLetterView
from assetline.dev.broker import free_ports
from assetline.dev.child_worker import WorkerProcess
from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs
from tests.support.dead_letters import (
    completions,
    poison_and_park,
    text_request,
    wait_completions,
    wait_idle,
)

StartWorker = Callable[[Settings], WorkerProcess]
PAGES = [
    Page("", "/signin", _signin.routes),
    Page("Dead letters", "/deadletters", dead_letter_views.routes),
]
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def _csrf(client: TestClient[web.Request, web.Application], path: str) -> str:
    page = await client.get(path)
    assert page.status == 200, await page.text()
    found = _CSRF.search(await page.text())
    assert found is not None
    return found.group(1)


async def _sign_in(client: TestClient[web.Request, web.Application]) -> None:
    token = await _csrf(client, "/signin")
    form = {"user": "ana", "password": "ana-pass-1", "csrf": token, "next": "/deadletters"}
    signed = await client.post("/signin", data=form, allow_redirects=False)
    assert signed.status == 303, await signed.text()
    assert signed.headers["Location"] == "/deadletters"


def test_without_a_broker_the_pages_say_so_in_one_line(tmp_path: Path) -> None:
    """Nothing listens on the port: a 503 naming the broker, not a traceback or a hang."""
    users = tmp_path / "users"
    UsersFile(users).add("ana", "ana-pass-1")
    (port,) = free_ports(1)
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{port}", topic_prefix="none", console_users_file=users
    )

    async def go() -> None:
        async with TestClient(TestServer(create_app(settings, PAGES), host="127.0.0.1")) as client:
            await _sign_in(client)
            page = await client.get("/deadletters", allow_redirects=False)
            assert page.status == 503
            assert f"cannot read the dead letters: cannot reach Kafka at 127.0.0.1:{port}" in (
                await page.text()
            )
            signed_in = await (await client.get("/signin")).text()
            token = re.search(r'data-csrf="([^"]+)"', signed_in)
            assert token is not None
            form = {"csrf": token.group(1), "position": "0:0"}
            refused = await client.post("/deadletters/redrive", data=form)
            assert refused.status == 503
            assert "cannot read the dead letters" in await refused.text()

    asyncio.run(go())


@pytest.mark.integration
def test_dead_letter_pages_list_inspect_and_redrive_the_selected_ones(
    line_settings: Settings, start_worker: StartWorker, tmp_path: Path
) -> None:
    users = tmp_path / "users"
    UsersFile(users).add("ana", "ana-pass-1")
    settings = line_settings.model_copy(update={"console_users_file": users})
    asyncio.run(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)))
    worker = start_worker(settings)
    asyncio.run(poison_and_park(settings, [text_request("dlv-0"), text_request("dlv-1")]))
    asyncio.run(_wait_letters(settings, 3))
    asyncio.run(_exercise(settings, worker))


async def _wait_letters(settings: Settings, count: int) -> None:
    view = DeadLetterView(settings)
    for _ in range(80):
        if len(await view.read()) >= count:
            return
        await asyncio.sleep(0.5)
    raise AssertionError("the worker did not dead-letter the poison message")


async def _exercise(settings: Settings, worker: WorkerProcess) -> None:
    server = TestServer(create_app(settings, PAGES), host="127.0.0.1")
    async with TestClient(server) as client:
        # Nothing without a session: pages send to sign-in, POSTs are refused.
        browser = {"Accept": "text/html"}
        away = await client.get("/deadletters", allow_redirects=False, headers=browser)
        assert away.status == 303
        assert away.headers["Location"].startswith("/signin?next=")
        refused = await client.post("/deadletters/redrive", data={"position": "0:0"})
        assert refused.status == 401
        await _sign_in(client)

        # The list: every key, counts per stage and code, the attempt inside.
        listing = await client.get("/deadletters")
        html = await listing.text()
        for key in ("bad-1", "dlv-0", "dlv-1"):
            assert f'<td class="key">{key}</td>' in html
        for key in ("dlv-0", "dlv-1"):  # a decodable request links to its timeline
            assert f'<a href="/requests/{key}" class="timeline-link">' in html
        assert "<td>generate</td><td><a href=" in html
        assert re.search(r"generate\.crashed</a></td><td>2</td>", html)
        positions = dict(
            re.findall(r'data-position="(\d+:\d+)">.*?<td class="key">([^<]+)</td>', html, re.S)
        )
        at = {key: position for position, key in positions.items()}
        assert set(at) == {"bad-1", "dlv-0", "dlv-1"}

        # Filters by code (and stage, key).
        only = await (await client.get("/deadletters", params={"code": "codec.malformed"})).text()
        assert "bad-1" in only
        assert "dlv-0" not in only
        by_key = await (await client.get("/deadletters", params={"key": "dlv-1"})).text()
        assert "dlv-1" in by_key
        assert "dlv-0" not in by_key
        assert "bad-1" not in by_key
        nothing = await (await client.get("/deadletters", params={"stage": "deliver"})).text()
        assert 'id="empty"' in nothing

        # One letter: the producer's token masked, the value described.
        partition, offset = at["bad-1"].split(":")
        one = await client.get(f"/deadletters/{partition}/{offset}")
        page = await one.text()
        assert one.status == 200
        assert "tok-0123456789abcdef" not in page
        assert "authorization" in page
        assert "*** (27 bytes)" in page
        assert "definitely not avro" in page
        assert "text/plain" in page
        assert (await client.get("/deadletters/9/999")).status == 404

        # Re-drive: without the CSRF token refused; with it, only the selected one is sent.
        token = await _csrf(client, "/deadletters")
        forged = await client.post("/deadletters/redrive", data={"position": at["dlv-0"]})
        assert forged.status == 403
        done = await client.post(
            "/deadletters/redrive", data={"csrf": token, "position": at["dlv-0"]}
        )
        result = await done.text()
        assert done.status == 200, result
        assert "Re-drove 1 of 1 dead letter(s)" in result
        assert "as request dlv-0 attempt 1001" in result
        await wait_completions(settings, {"dlv-0": [1001]}, worker)
        assert "dlv-1" not in await completions(settings)

        # Again with dlv-1 and the poison: dlv-0 is not completed twice, the poison is skipped.
        form = [("csrf", token), *(("position", at[k]) for k in ("dlv-0", "dlv-1", "bad-1"))]
        again = await (await client.post("/deadletters/redrive", data=form)).text()
        assert "Re-drove 2 of 3 dead letter(s)" in again
        assert "still not a valid record" in again
        await wait_completions(settings, {"dlv-0": [1001], "dlv-1": [1001]}, worker)
        await wait_idle(settings, worker)
        finished = await completions(settings)
        assert (finished["dlv-0"], finished["dlv-1"]) == ([1001], [1001])
        assert "bad-1" not in finished
