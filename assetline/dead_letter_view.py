"""Dead letters as an operator sees them: rows with their keys, counts, one letter inspected.

:mod:`assetline.redrive` reads the dead-letter topic and re-drives; this module turns what it
reads into values a page or a terminal can show as they are, with nothing secret in them:

* a **row** per dead letter: its position (``partition:offset`` of the dead-letter topic), the
  record key (the request id: printable, cut), stage, code, reason, source, time and the
  attempt of the request inside, when the value still decodes;
* **groups**: how many letters per (stage, code), the first question after an incident;
* a **detail** of one letter: every header, those that carry credentials or marks
  (``assetline-signature``, ``assetline.origin``, anything named like a secret) masked; and
  the value as a field summary when it decodes, else its size and sniffed media type;
* **re-drive** of the letters at chosen positions, through :func:`assetline.redrive.redrive`,
  so re-driving one twice still ends in one completion per (request, attempt).

All text shown (key, reason, header values, decoded fields) is scrubbed of the settings'
secrets in every form :func:`streams.redaction.redact` knows, and credentials in URLs are cut
out, because a console shows it to people who have no access to the secrets or to Kafka.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

from agents.tenants import Gatekeeper
from assetline.redrive import (
    DeadLetter,
    RedriveReport,
    read_deadletters,
    redrive,
    report_lines,
    show_key,
)
from assetline.replay.rewrite import Rewriter, kind_of
from streams.blobs import open_blob_store
from streams.codecs import AvroCodec, CodecError, Codecs
from streams.dead_letters import (
    KEY_TRUNCATED,
    PARKED_MEDIA_TYPE,
    VALUE_PARKED,
    VALUE_SIZE,
    VALUE_TRUNCATED,
    header_map,
)
from streams.redaction import MASK, redact
from streams.settings import Settings
from streams.signing import ORIGIN_HEADER, SIGNATURE_HEADER, RequestMarker
from streams.topics import TopicNames

__all__ = [
    "DeadLetterDetail",
    "DeadLetterRow",
    "DeadLetterView",
    "Group",
    "HeaderView",
    "Position",
    "RedriveResult",
    "ValueView",
    "groups",
    "parse_position",
    "position_of",
    "settings_secrets",
]

#: Header names whose values are never shown: credentials, and HMAC marks that would let
#: whoever reads them re-submit exactly those bytes as an admitted request.
_SENSITIVE: Final = re.compile(
    r"secret|token|passw(or)?d|authori[sz]ation|cookie|api[-_.]?key|signature|credential"
    r"|private|session",
    re.IGNORECASE,
)
_ALWAYS_HIDDEN: Final = frozenset({SIGNATURE_HEADER, ORIGIN_HEADER})
#: ``scheme://user:password@`` in any text: the password part is cut out.
_URL_USERINFO: Final = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")
HEADER_CHARS: Final = 500
FIELD_CHARS: Final = 200
PREVIEW_CHARS: Final = 200
MAX_FIELDS: Final = 60


@dataclass(frozen=True, order=True)
class Position:
    """Where a dead letter sits in the dead-letter topic; shown as ``partition:offset``."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


def parse_position(text: str) -> Position:
    """``PARTITION:OFFSET`` (as ``dlq list`` shows it) or ``PARTITION@OFFSET``.

    Unlike ``dlq replay --offset`` the partition is required: a page or a script names one
    letter, never "offset 3 of whichever partition".
    """
    partition, sep, offset = text.strip().replace("@", ":", 1).partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"expected PARTITION:OFFSET, got {text[:40]!r}")
    return Position(int(partition), int(offset))


def position_of(letter: DeadLetter) -> Position:
    return Position(letter.partition, letter.offset)


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret the settings hold in clear (``SecretStr`` fields and maps of them)."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        values = value.values() if isinstance(value, Mapping) else (value,)
        found += [v.get_secret_value() for v in values if isinstance(v, SecretStr)]
    return [s for s in found if s]


def _scrub(text: str, secrets: Sequence[str]) -> str:
    if "@" in text:
        text = _URL_USERINFO.sub(rf"\g<scheme>{MASK}@", text)
    return redact(text, secrets) if secrets else text


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _printable(text: str) -> str:
    """Control characters escaped, so a value can never break a line or a table."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


@dataclass(frozen=True)
class DeadLetterRow:
    """One dead letter as a list shows it (every text already safe to display)."""

    position: Position
    key: str
    stage: str
    code: str
    reason: str
    source_topic: str
    source: str
    time: str
    #: The attempt of the request inside the value; None when it does not decode as one.
    attempt: int | None
    request_id: str | None


@dataclass(frozen=True)
class Group:
    """How many dead letters one (stage, code) has."""

    stage: str
    code: str
    count: int


@dataclass(frozen=True)
class HeaderView:
    name: str
    value: str
    hidden: bool


@dataclass(frozen=True)
class ValueView:
    """What the value is: decoded fields when it decodes, else its size and media type."""

    size: int
    media_type: str
    record_type: str | None
    fields: tuple[tuple[str, str], ...]
    #: The value's text when it is text but no record (a poison message), scrubbed and cut.
    preview: str | None
    #: Why it does not decode (the codec's message), when it does not.
    error: str | None
    #: Where a value too large to travel was parked (its blob URI), when it was.
    parked: str | None
    #: The original size when the value was cut to fit the dead-letter topic.
    truncated_from: int | None


@dataclass(frozen=True)
class DeadLetterDetail:
    row: DeadLetterRow
    headers: tuple[HeaderView, ...]
    value: ValueView
    key_truncated_from: int | None


@dataclass(frozen=True)
class RedriveResult:
    """A re-drive of chosen positions: the report, and the positions that held nothing."""

    report: RedriveReport
    missing: tuple[Position, ...]

    def lines(self) -> list[str]:
        return report_lines(self.report) + [
            f"{p} skipped: no dead letter at that position" for p in self.missing
        ]

    @property
    def sent(self) -> int:
        return self.report.count("redriven") + self.report.count("verbatim")


def groups(rows: Iterable[DeadLetterRow]) -> list[Group]:
    """Counts per (stage, code), largest first."""
    counts = Counter((r.stage, r.code) for r in rows)
    return [
        Group(stage, code, n)
        for (stage, code), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _sniff(value: bytes) -> str:
    """A media type for bytes that are no record: enough to tell an operator what arrived."""
    signatures = (
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF8", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"\xc3\x01", "application/vnd.apache.avro+binary"),  # single-object, not ours
    )
    for magic, media_type in signatures:
        if value.startswith(magic):
            return media_type
    if value[:4] == b"RIFF" and value[8:12] == b"WEBP":
        return "image/webp"
    if value[:1] == b"\x00" and len(value) >= 5:
        return "application/vnd.confluent.avro"  # Confluent framing: magic 0 + schema id
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    try:
        json.loads(text)
    except ValueError:
        return "text/plain"
    return "application/json"


def _field_text(path: str, value: Any, secrets: Sequence[str]) -> str:
    if _SENSITIVE.search(path.rsplit(".", 1)[-1]) and not path.endswith("_name"):
        return MASK
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, str) and path.rsplit(".", 1)[-1] == "url":
        # A webhook URL is often itself the credential (Slack, Teams): scheme and host only.
        parts = urlsplit(value)
        value = f"{parts.scheme}://{parts.hostname or ''}/…" if parts.scheme else MASK
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return _cut(_printable(_scrub(text, secrets)), FIELD_CHARS)


def _flatten(
    model: BaseModel, secrets: Sequence[str], prefix: str = "", depth: int = 0
) -> list[tuple[str, str]]:
    """``(dotted.field, text)`` pairs; nested records are walked two levels deep."""
    out: list[tuple[str, str]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = f"{prefix}{name}"
        if value is None or (isinstance(value, list | tuple | Mapping) and not value):
            continue  # nothing to see: an empty list or map says nothing about the letter
        if isinstance(value, BaseModel):
            if depth < 2:
                out += _flatten(value, secrets, path + ".", depth + 1)
            else:
                out.append((path, f"<{type(value).__name__}>"))
        elif isinstance(value, list | tuple) and value and isinstance(value[0], BaseModel):
            out.append((path, f"[{len(value)} {type(value[0]).__name__}]"))
        elif isinstance(value, Mapping):  # metadata, variables: a key may name a secret
            shown = {k: MASK if _SENSITIVE.search(str(k)) else v for k, v in value.items()}
            out.append((path, _field_text(path, shown, secrets)))
        else:
            out.append((path, _field_text(path, value, secrets)))
    return out


class DeadLetterView:
    """The dead-letter topic of one line, read and shown safely.

    ``secrets`` defaults to every secret of ``settings`` (:func:`settings_secrets`); pass more
    (a tenant's producer secret) to scrub them as well.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        names: TopicNames | None = None,
        codecs: Codecs | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.settings = settings
        self.names = names or TopicNames.with_prefix(settings.topic_prefix)
        self.codecs = codecs or Codecs.load()
        self.secrets = [*settings_secrets(settings), *secrets]
        self._rewriter = Rewriter(self.codecs)
        #: Rows already made: a position's letter never changes, and a page reload would
        #: otherwise decode and scrub every letter of the topic again.
        self._rows: dict[tuple[int, int, str, int], DeadLetterRow] = {}

    async def read(self) -> list[DeadLetter]:
        """Every dead letter now on the topic (read to its end, oldest first per partition)."""
        return await read_deadletters(self.settings, self.names)

    # -- list -------------------------------------------------------------------------------

    def _request_of(self, letter: DeadLetter) -> tuple[str | None, int | None]:
        kind = kind_of(self.names, letter.source_topic)
        if kind is None or not letter.value:
            return None, None
        try:
            request = self._rewriter.request_of(kind, letter.value)
        except CodecError:
            return None, None
        return request.request_id, request.attempt

    def row(self, letter: DeadLetter) -> DeadLetterRow:
        request_id, attempt = self._request_of(letter)
        scrub = self._text
        return DeadLetterRow(
            position=position_of(letter),
            key=scrub(show_key(letter.key)),
            stage=scrub(letter.stage),
            code=scrub(letter.code),
            reason=scrub(letter.reason),
            source_topic=scrub(letter.source_topic),
            source=scrub(letter.source),
            time=scrub(letter.time),
            attempt=attempt,
            request_id=None if request_id is None else scrub(request_id),
        )

    def rows(
        self,
        letters: Iterable[DeadLetter],
        *,
        stages: Sequence[str] = (),
        codes: Sequence[str] = (),
        key: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[DeadLetterRow]:
        """Rows of the letters of one of ``stages`` and ``codes`` (empty: any) whose key
        contains ``key``, oldest first (or newest first), at most ``limit``."""
        chosen = [
            d
            for d in letters
            if (not stages or d.stage in stages) and (not codes or d.code in codes)
        ]
        chosen.sort(key=lambda d: (d.time, d.partition, d.offset), reverse=newest_first)
        if len(self._rows) > 2 * len(chosen) + 10_000:  # the topic was cleaned or recreated
            self._rows.clear()
        out = (self._row_once(d) for d in chosen)
        if key:
            out = (r for r in out if key in r.key)
        rows = list(out)
        return rows if limit is None else rows[:limit]

    def _row_once(self, letter: DeadLetter) -> DeadLetterRow:
        memo = (letter.partition, letter.offset, letter.time, len(letter.value))
        row = self._rows.get(memo)
        if row is None:
            row = self._rows[memo] = self.row(letter)
        return row

    # -- one letter -------------------------------------------------------------------------

    def find(self, letters: Iterable[DeadLetter], position: Position) -> DeadLetter | None:
        return next((d for d in letters if position_of(d) == position), None)

    def detail(self, letter: DeadLetter) -> DeadLetterDetail:
        h = header_map(letter.headers)
        cut = h.get(KEY_TRUNCATED, "")
        return DeadLetterDetail(
            row=self.row(letter),
            headers=tuple(self._header(name, value) for name, value in letter.headers),
            value=self._value(letter, h),
            key_truncated_from=int(cut) if cut.isdigit() else None,
        )

    def _header(self, name: str, value: bytes | None) -> HeaderView:
        shown_name = _cut(_printable(name), 200)
        if name.lower() in _ALWAYS_HIDDEN or _SENSITIVE.search(name):
            return HeaderView(shown_name, f"{MASK} ({len(value or b'')} bytes)", hidden=True)
        text = (value or b"").decode("utf-8", "backslashreplace")
        return HeaderView(shown_name, _cut(self._text(text), HEADER_CHARS), hidden=False)

    def _value(self, letter: DeadLetter, h: Mapping[str, str]) -> ValueView:
        size_text, truncated = h.get(VALUE_SIZE, ""), h.get(VALUE_TRUNCATED, "")
        parked = h.get(VALUE_PARKED)
        value = letter.value
        size = int(size_text) if parked is not None and size_text.isdigit() else len(value)
        common: dict[str, Any] = {
            "size": size,
            "parked": None if parked is None else self._text(parked),
            "truncated_from": int(truncated) if truncated.isdigit() else None,
        }
        if parked is not None and not value:
            return ValueView(
                media_type=PARKED_MEDIA_TYPE,
                record_type=None,
                fields=(),
                preview=None,
                error=None,
                **common,
            )
        error = None
        for codec in self._codecs_for(letter.source_topic):
            try:
                record = codec.decode(value)
            except CodecError as exc:
                error = error or str(exc)
                continue
            fields = _flatten(record, self.secrets)[:MAX_FIELDS]
            return ValueView(
                media_type="application/vnd.apache.avro+binary",
                record_type=type(record).__name__,
                fields=tuple(fields),
                preview=None,
                error=None,
                **common,
            )
        media_type = _sniff(value)
        preview = None
        if media_type in ("text/plain", "application/json"):
            preview = _cut(self._text(value.decode("utf-8")), PREVIEW_CHARS)
        return ValueView(
            media_type=media_type,
            record_type=None,
            fields=(),
            preview=preview,
            error=None if error is None else _cut(self._text(error), FIELD_CHARS),
            **common,
        )

    def _codecs_for(self, topic: str) -> list[AvroCodec[Any]]:
        """The codec of the source topic's contract first, then the others (the writer
        schema's fingerprint decides; a letter with no source still gets a summary)."""
        c, n = self.codecs, self.names
        by_topic: dict[str, AvroCodec[Any]] = {
            n.requests: c.request,
            n.requests_urgent: c.request,
            n.raw: c.raw,
            n.approved: c.validated,
            n.rejected: c.validated,
            n.deliver_deferred: c.validated,
            n.review: c.validated,
            n.shadows: c.validated,
            n.completed: c.completed,
            n.alerts: c.alert,
            n.review_decisions: c.review_decision,
            n.review_items: c.review_item,
            n.webhooks: c.webhook_job,
        }
        every: list[AvroCodec[Any]] = [
            c.request,
            c.raw,
            c.validated,
            c.completed,
            c.alert,
            c.review_decision,
            c.review_item,
            c.webhook_job,
        ]
        first = by_topic.get(topic)
        return [first, *(x for x in every if x is not first)] if first else every

    def _text(self, text: str) -> str:
        return _printable(_scrub(text, self.secrets))

    # -- re-drive ---------------------------------------------------------------------------

    async def redrive(
        self,
        letters: Sequence[DeadLetter],
        positions: Iterable[Position],
        *,
        dry_run: bool = False,
        marker: RequestMarker | None = None,
    ) -> RedriveResult:
        """Send the letters at ``positions`` back to their source topics as new attempts.

        Through :func:`assetline.redrive.redrive`: the same letter re-driven again gets the
        same attempt, so the line keeps one completion per (request, attempt). ``marker``
        defaults to the line's own (:meth:`Gatekeeper.from_settings`; raises
        ``TenantsFileError`` on a bad tenants file); values parked in an S3 blob store are
        read back through the line's store.
        """
        wanted = sorted(set(positions))
        at = {position_of(d): d for d in letters}
        chosen = [at[p] for p in wanted if p in at]
        missing = tuple(p for p in wanted if p not in at)
        if marker is None:
            marker = Gatekeeper.from_settings(self.settings)
        blobs = open_blob_store(self.settings) if self.settings.blob_store == "s3" else None
        try:
            report = await redrive(
                self.settings,
                self.names,
                chosen,
                self._rewriter,
                dry_run=dry_run,
                marker=marker,
                blobs=blobs,
            )
        finally:
            if blobs is not None:
                await blobs.aclose()
        return RedriveResult(report, missing)
