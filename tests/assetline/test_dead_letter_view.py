"""Dead letters as the console and ``dlq show`` present them: keys, counts, secrets never shown."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord
from pydantic import SecretStr

from agents.tenants import Gatekeeper
from assetline.dead_letter_view import (
    DeadLetterView,
    Group,
    Position,
    groups,
    parse_position,
    settings_secrets,
)
from assetline.redrive import DeadLetter, from_record
from schemas.records import (
    AssetCompleted,
    AssetKind,
    CompletionStatus,
    GenerationRequest,
    WebhookJob,
)
from streams.codecs import Codecs
from streams.dead_letters import VALUE_PARKED, VALUE_SHA256, VALUE_SIZE, deadletter_headers
from streams.redaction import MASK
from streams.settings import Settings
from streams.signing import origin_mark, sign_request

CODECS = Codecs.load()
API_KEY = "sk-live-0123456789abcdef"
SETTINGS = Settings(topic_prefix="p", api_keys={"openai": SecretStr(API_KEY)})


def _request(request_id: str = "r-1", attempt: int = 1) -> GenerationRequest:
    return GenerationRequest(
        request_id=request_id,
        idempotency_key=request_id,
        tenant="acme",
        campaign_id="c",
        kind="TEXT",
        prompt_template="hi",
        attempt=attempt,
    )


def _letter(
    partition: int,
    offset: int,
    value: bytes,
    *,
    key: bytes | None = b"r-1",
    stage: str = "generate",
    code: str = "codec.malformed",
    reason: str = "not Avro single-object encoding",
    source: str = "p.requests",
    minute: int = 0,
    original: list[tuple[str, bytes]] | None = None,
    extra: list[tuple[str, bytes]] | None = None,
) -> DeadLetter:
    headers = deadletter_headers(
        stage=stage,
        code=code,
        reason=reason,
        topic=source,
        partition=0,
        offset=offset,
        original=original or [("traceparent", b"00-abc-def-01")],
        now=datetime(2025, 1, 1, 0, minute, tzinfo=UTC),
    ) + (extra or [])
    record = ConsumerRecord(
        "p.deadletter", partition, offset, 0, 0, key, value, None, 0, len(value), headers
    )
    return from_record(record)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0:3", Position(0, 3)), ("2@12", Position(2, 12)), (" 1:0 ", Position(1, 0))],
)
def test_parse_position(text: str, expected: Position) -> None:
    assert parse_position(text) == expected


@pytest.mark.parametrize("text", ["", "3", "a:3", "1:", ":3", "1:-2", "1:2:3"])
def test_parse_position_needs_a_partition_and_an_offset(text: str) -> None:
    with pytest.raises(ValueError, match="PARTITION:OFFSET"):
        parse_position(text)


def test_position_prints_as_dlq_list_shows_it() -> None:
    assert str(Position(1, 42)) == "1:42"


def test_rows_show_keys_and_the_attempt_inside_when_it_decodes() -> None:
    view = DeadLetterView(SETTINGS, codecs=CODECS)
    letters = [
        _letter(0, 1, CODECS.request.encode(_request("r-7", 1003)), key=b"r-7", minute=2),
        _letter(0, 2, b"junk", key=b"evil\nkey\x1b[31m", minute=1),
        _letter(1, 0, b"junk", key=None, minute=3),
        _letter(1, 1, b"k" * 10, key=b"x" * 500, minute=4),
    ]
    rows = view.rows(letters)
    assert [str(r.position) for r in rows] == ["0:2", "0:1", "1:0", "1:1"]  # oldest first
    poison, redriven, keyless, long = rows
    assert (redriven.key, redriven.request_id, redriven.attempt) == ("r-7", "r-7", 1003)
    assert poison.key == "evil\\nkey\\x1b[31m"  # printable: no newline, no terminal escape
    assert (poison.attempt, poison.request_id) == (None, None)
    assert keyless.key == "-"
    assert len(long.key) == 60
    assert long.key.endswith("…")
    assert (redriven.stage, redriven.code, redriven.source) == (
        "generate",
        "codec.malformed",
        "p.requests/0/1",
    )
    assert redriven.time == "2025-01-01T00:02:00.000+00:00"


def test_rows_filter_by_stage_code_and_key_newest_first_limited() -> None:
    view = DeadLetterView(SETTINGS, codecs=CODECS)
    letters = [
        _letter(0, 0, b"a", code="codec.malformed", minute=0, key=b"r-a"),
        _letter(0, 1, b"b", stage="deliver", code="deliver.crashed", minute=1, key=b"r-b"),
        _letter(0, 2, b"c", code="generate.crashed", minute=2, key=b"r-c"),
        _letter(0, 3, b"d", code="generate.crashed", minute=3, key=b"other"),
    ]
    assert [r.key for r in view.rows(letters, stages=["deliver"])] == ["r-b"]
    assert [r.key for r in view.rows(letters, codes=["generate.crashed"])] == ["r-c", "other"]
    assert [r.key for r in view.rows(letters, key="r-")] == ["r-a", "r-b", "r-c"]
    assert [r.key for r in view.rows(letters, newest_first=True, limit=2)] == ["other", "r-c"]
    assert view.rows(letters, stages=["generate"], codes=["deliver.crashed"]) == []


def test_groups_count_per_stage_and_code_largest_first() -> None:
    view = DeadLetterView(SETTINGS, codecs=CODECS)
    letters = [
        _letter(0, 0, b"a", code="codec.malformed"),
        _letter(0, 1, b"b", stage="deliver", code="deliver.crashed"),
        _letter(0, 2, b"c", code="codec.malformed"),
        _letter(0, 3, b"d", stage="validate", code="codec.malformed"),
    ]
    assert groups(view.rows(letters)) == [
        Group("generate", "codec.malformed", 2),
        Group("deliver", "deliver.crashed", 1),
        Group("validate", "codec.malformed", 1),
    ]


def test_settings_secrets_are_every_secret_field_and_map() -> None:
    settings = Settings(
        api_keys={"a": SecretStr("key-aaaaaaaa"), "b": SecretStr("key-bbbbbbbb")},
        blob_s3_secret_access_key=SecretStr("s3-secret-1"),
    )
    assert sorted(settings_secrets(settings)) == ["key-aaaaaaaa", "key-bbbbbbbb", "s3-secret-1"]


def test_detail_masks_credentials_marks_and_known_secrets() -> None:
    view = DeadLetterView(SETTINGS, codecs=CODECS)
    value = CODECS.request.encode(_request())
    original = [
        ("traceparent", b"00-abc-def-01"),
        sign_request(value, "producer-secret"),
        origin_mark(value, "line-secret"),
        ("Authorization", b"Bearer abcdefgh12345678"),
        ("x-api-key", b"k"),
        ("x-note", f"called with {API_KEY}".encode()),
        ("x-binary", b"\x00\xffline\nbreak"),
    ]
    letter = _letter(
        0,
        5,
        value,
        code="generate.crashed",
        reason=f"HTTPError: https://user:hunter2@api.example/v1 key={API_KEY}",
        original=original,
    )
    detail = view.detail(letter)
    shown = {h.name: h for h in detail.headers}
    assert shown["traceparent"].value == "00-abc-def-01"
    assert not shown["traceparent"].hidden
    for name in ("assetline-signature", "assetline.origin", "Authorization", "x-api-key"):
        assert shown[name].hidden, name
        assert shown[name].value.startswith(MASK)
    assert shown["x-note"].value == f"called with {MASK}"
    assert "\n" not in shown["x-binary"].value
    assert shown["assetline.dlq.stage"].value == "generate"
    text = repr(detail)
    for secret in (API_KEY, "hunter2", "abcdefgh12345678", "v1="):
        assert secret not in text, secret
    assert detail.row.reason == f"HTTPError: https://{MASK}@api.example/v1 key={MASK}"


def test_detail_summarises_a_value_that_decodes() -> None:
    view = DeadLetterView(SETTINGS, codecs=CODECS)
    value = CODECS.request.encode(_request("r-9", 2))
    detail = view.detail(_letter(0, 1, value, key=b"r-9", code="generate.crashed"))
    assert detail.value.record_type == "GenerationRequest"
    assert detail.value.size == len(value)
    assert detail.value.error is None
    fields = dict(detail.value.fields)
    assert fields["request_id"] == "r-9"
    assert fields["attempt"] == "2"
    assert fields["tenant"] == "acme"
    assert fields["kind"] == "TEXT"
    assert "feedback" not in fields  # an empty list says nothing
    assert (detail.row.request_id, detail.row.attempt) == ("r-9", 2)


def test_a_map_entry_named_like_a_secret_is_masked() -> None:
    request = _request().model_copy(
        update={"metadata": {"team": "growth", "callback_token": "tk-99887766"}}
    )
    letter = _letter(0, 1, CODECS.request.encode(request), code="generate.crashed")
    fields = dict(DeadLetterView(SETTINGS, codecs=CODECS).detail(letter).value.fields)
    assert fields["metadata"] == '{"team": "growth", "callback_token": "***"}'


def test_a_webhook_url_shows_only_its_host() -> None:
    """A Slack or Teams webhook URL is itself the credential."""
    completion = AssetCompleted(
        request_id="r-5",
        idempotency_key="r-5",
        tenant="acme",
        campaign_id="c",
        kind=AssetKind.TEXT,
        status=CompletionStatus.DELIVERED,
    )
    job = WebhookJob(
        webhook_id="w-1",
        url="https://hooks.slack.example/services/T000/B000/XXXXsecretXXXX",
        due_at=datetime(2025, 1, 1, tzinfo=UTC),
        completion=completion,
    )
    letter = _letter(0, 1, CODECS.webhook_job.encode(job), stage="notify", source="p.webhooks")
    fields = dict(DeadLetterView(SETTINGS, codecs=CODECS).detail(letter).value.fields)
    assert fields["url"] == "https://hooks.slack.example/…"
    assert fields["completion.request_id"] == "r-5"
    assert "XXXXsecretXXXX" not in repr(fields)


def test_detail_of_a_value_that_does_not_decode_gives_size_and_media_type() -> None:
    view = DeadLetterView(SETTINGS, codecs=CODECS)
    text = view.detail(_letter(0, 1, f"not avro {API_KEY}".encode()))
    assert (text.value.record_type, text.value.fields) == (None, ())
    assert text.value.media_type == "text/plain"
    assert text.value.preview == f"not avro {MASK}"
    assert text.value.error is not None
    assert text.value.size == len(f"not avro {API_KEY}")
    png = view.detail(_letter(0, 2, b"\x89PNG\r\n\x1a\n" + b"\x00" * 40))
    assert (png.value.media_type, png.value.preview, png.value.size) == ("image/png", None, 48)
    js = view.detail(_letter(0, 3, b'{"request_id": "r-1"}'))
    assert (js.value.media_type, js.value.preview) == ("application/json", '{"request_id": "r-1"}')
    blob = view.detail(_letter(0, 4, b"\x01\x02\xfe\xff"))
    assert (blob.value.media_type, blob.value.preview) == ("application/octet-stream", None)


def test_detail_of_a_parked_value_names_where_and_its_real_size() -> None:
    view = DeadLetterView(SETTINGS, codecs=CODECS)
    letter = _letter(
        0,
        9,
        b"",
        code="request.too_large",
        extra=[
            (VALUE_SIZE, b"300000"),
            (VALUE_SHA256, b"ab" * 32),
            (VALUE_PARKED, b"file:///var/blobs/ab/ab/" + b"ab" * 32),
        ],
    )
    value = view.detail(letter).value
    assert (value.size, value.media_type) == (300000, "application/octet-stream")
    assert value.parked == "file:///var/blobs/ab/ab/" + "ab" * 32


def test_redrive_of_positions_plans_each_once_and_names_missing_ones() -> None:
    """Dry run: nothing is sent, so no broker is needed; the planned attempts are the ones a
    real re-drive sends, the same every time (one completion per request and attempt)."""
    view = DeadLetterView(SETTINGS, codecs=CODECS)
    letters = [
        _letter(0, 1, CODECS.request.encode(_request("r-1")), code="generate.crashed"),
        _letter(0, 2, CODECS.request.encode(_request("r-2")), code="generate.crashed"),
        _letter(1, 1, b"junk"),
    ]
    gate = Gatekeeper(b"line-secret")
    positions = [Position(0, 2), Position(1, 1), Position(0, 2), Position(3, 3)]
    result = asyncio.run(view.redrive(letters, positions, dry_run=True, marker=gate))
    assert result.missing == (Position(3, 3),)
    assert [(i.letter.offset, i.outcome) for i in result.report.items] == [
        (2, "redriven"),
        (1, "undecodable"),
    ]
    assert result.report.items[0].attempt == 1001
    assert result.sent == 1
    assert result.lines()[-1] == "3:3 skipped: no dead letter at that position"
    again = asyncio.run(view.redrive(letters, [Position(0, 2)], dry_run=True, marker=gate))
    assert again.report.items[0].attempt == 1001


def test_rows_made_once_per_letter_yet_a_new_letter_at_an_old_position_is_read_anew() -> None:
    """A page reload reuses rows; a topic deleted and recreated reuses positions."""
    view = DeadLetterView(SETTINGS, codecs=CODECS)
    first = _letter(0, 0, b"a", key=b"old", minute=1)
    (row,) = view.rows([first])
    assert view.rows([_letter(0, 0, b"a", key=b"old", minute=1)])[0] is row
    (again,) = view.rows([_letter(0, 0, b"a", key=b"new", minute=2)])
    assert again.key == "new"
