"""Dead letters on a real broker, as an operator meets them: listed with their keys, one
inspected with its secrets masked, the chosen ones re-driven to their source and completed once.

A worker dead-letters a poison message itself (with an ``Authorization`` header a careless
producer sent); two valid requests are parked by hand as a stage that crashed on them would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner, Result

from assetline.cli import cli
from assetline.dead_letter_view import DeadLetterView, Group, Position, groups
from assetline.dev.child_worker import WorkerProcess
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from tests.support.dead_letters import (
    completions,
    poison_and_park,
    text_request,
    wait_completions,
    wait_idle,
)

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]


def _cli(settings: Settings, *args: str) -> Result:
    env = {
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ASSETLINE_TOPIC_PREFIX": settings.topic_prefix,
        "ASSETLINE_APP_ID": settings.app_id,
    }
    result = CliRunner().invoke(cli, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 0, result.output
    return result


def test_dead_letters_listed_with_keys_inspected_and_chosen_ones_redriven_once(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    names = TopicNames.with_prefix(line_settings.topic_prefix)
    asyncio.run(ensure_topics(line_settings.kafka_bootstrap, line_topic_specs(line_settings)))
    worker = start_worker(line_settings)
    parked = [text_request("dlv-0"), text_request("dlv-1")]
    asyncio.run(poison_and_park(line_settings, parked))
    view = DeadLetterView(line_settings)
    deadline = time.monotonic() + 40
    while len(letters := asyncio.run(view.read())) < 3:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.5)

    # Listed with their keys, the attempt inside when the value decodes, and counted.
    rows = {row.key: row for row in view.rows(letters)}
    assert set(rows) == {"bad-1", "dlv-0", "dlv-1"}
    poison = rows["bad-1"]
    assert (poison.stage, poison.code, poison.attempt) == ("generate", "codec.malformed", None)
    assert poison.source.startswith(f"{names.requests}/")
    assert (rows["dlv-0"].request_id, rows["dlv-0"].attempt) == ("dlv-0", 1)
    assert view.rows(letters, codes=["codec.malformed"]) == [poison]
    assert Group("generate", "generate.crashed", 2) in groups(view.rows(letters))

    # One inspected: the producer's token is masked, the value is described, not dumped.
    letter = view.find(letters, poison.position)
    assert letter is not None
    detail = view.detail(letter)
    headers = {h.name: h for h in detail.headers}
    assert headers["authorization"].hidden
    assert "tok-0123456789abcdef" not in repr(detail)
    assert (detail.value.media_type, detail.value.preview) == ("text/plain", "definitely not avro")
    parked = view.detail(letters[[d.key for d in letters].index(b"dlv-0")])
    assert parked.value.record_type == "GenerationRequest"
    assert dict(parked.value.fields)["request_id"] == "dlv-0"

    # The CLI shows the same: keys in the list, counts, one letter with its token masked.
    listed = _cli(line_settings, "dlq", "list").output
    assert all(key in listed for key in ("bad-1", "dlv-0", "dlv-1"))
    counts = _cli(line_settings, "dlq", "list", "--counts").output.splitlines()
    assert counts[0].split() == ["count", "stage", "code"]
    assert counts[1].split() == ["2", "generate", "generate.crashed"]
    shown = _cli(line_settings, "dlq", "show", str(poison.position)).output
    assert "key       bad-1" in shown
    assert "authorization" in shown
    assert "tok-0123456789abcdef" not in shown
    assert "text: definitely not avro" in shown
    as_json = json.loads(
        _cli(line_settings, "dlq", "show", "--json", str(rows["dlv-0"].position)).output
    )
    assert as_json["row"]["key"] == "dlv-0"
    assert as_json["value"]["record_type"] == "GenerationRequest"

    # Re-drive only dlv-0 (and a position that holds nothing): it completes as attempt 1001.
    result = asyncio.run(view.redrive(letters, [rows["dlv-0"].position, Position(9, 9)]))
    assert result.sent == 1
    assert result.missing == (Position(9, 9),)
    asyncio.run(wait_completions(line_settings, {"dlv-0": [1001]}, worker))
    assert "dlv-1" not in asyncio.run(completions(line_settings))

    # Then dlv-0 again with dlv-1, from the CLI by PARTITION@OFFSET: still one completion each.
    at = [
        f"{row.position.partition}@{row.position.offset}" for row in (rows["dlv-0"], rows["dlv-1"])
    ]
    offsets = ["--offset", at[0], "--offset", at[1], "--offset", "9@9"]
    again = _cli(line_settings, "dlq", "replay", "--to-source", *offsets)
    assert "re-drove 2 dead letter(s), skipped 0" in again.output
    assert "9@9 skipped: no dead letter at that position" in again.output
    assert f"-> {names.requests} request dlv-0 attempt 1001" in again.output
    asyncio.run(wait_completions(line_settings, {"dlv-0": [1001], "dlv-1": [1001]}, worker))
    asyncio.run(wait_idle(line_settings, worker))
    done = asyncio.run(completions(line_settings))
    assert (done["dlv-0"], done["dlv-1"]) == ([1001], [1001])
    assert "bad-1" not in done
