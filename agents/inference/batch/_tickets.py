"""Which provider batch holds a request's call, recorded durably so a crash does not pay twice.

A batched call is paid once its batch runs, yet its request is only finished (its generation
recorded, its offset committed) when the batch ends, minutes to a day later. A worker that
crashes or loses the partition meanwhile hands the request to a next owner, which without a
record would put the call into a new batch: paid again. So each request's place in a batch
(batch id, ``custom_id``) is written, as soon as the batch is created, to the same durable
store as finished generations (the ``<prefix>.generations`` changelog, co-partitioned with
``.requests``, under its own key ``<request id>|batch-<attempt>``: readers that take the request
id as what precedes the last ``|`` still find it); the next owner finds it and
follows that batch instead of submitting the call again.

A crash between the provider creating the batch and the broker acknowledging that record
(milliseconds) would leave no trace, so where the batch API allows it the record is written
twice. OpenAI's calls go up as a file before the batch is created on it: each call's *intent*
ticket (the ``input_file_id``, its ``custom_id``, no batch id yet) is acknowledged before the
create is sent, then replaced by the ticket with the batch id. A next owner that finds an
intent looks the batch up by its file among the newest batches: found, it follows it; not
found, the create never happened and the call is batched anew (a lookup that fails sends the
request to the synchronous chain, see :meth:`BatchCollector.created_from`). Anthropic's create
carries the calls itself and its batches hold nothing to find them by, so there the window
remains; so it does for a call whose intent the broker did not acknowledge in time (the batch
is created anyway: its line is in the file). A record is trusted only for the same rung
(provider, wire model) and the same prompt (its SHA-256); anything else, or a record this
worker cannot read, is ignored: the call is batched anew.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiokafka.errors import KafkaError

from agents.inference.batch._clients import CUSTOM_ID
from agents.inference.paid_once import body_of, stamped
from schemas.records import GenerationRequest

__all__ = ["BatchTickets", "Ticket", "TicketStore", "prompt_digest", "ticket_key"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ticket:
    """A call's place in a provider batch; an *intent* (no ``batch_id``, an
    ``input_file_id``) while the batch is about to be created on that file."""

    provider: str
    model: str
    batch_id: str
    custom_id: str
    prompt_sha256: str
    input_file_id: str = ""

    @property
    def intent(self) -> bool:
        return not self.batch_id

    @property
    def place(self) -> str:
        """For logs: the batch, or the file it is to be created on."""
        return f"batch {self.batch_id}" if self.batch_id else f"input file {self.input_file_id}"


class TicketStore(Protocol):
    """The finished-generations table in a worker (a ``paid_once.RecordTable``), a dict in tests."""

    def get(self, key: bytes) -> bytes | None: ...

    async def record(self, key: bytes, value: bytes) -> None: ...


def ticket_key(request: GenerationRequest) -> bytes:
    """Per (request, attempt), beside its finished generation's ``<id>|<attempt>`` key."""
    return f"{request.request_id}|batch-{request.attempt}".encode()


def prompt_digest(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def encode_ticket(ticket: Ticket, at_ms: int) -> bytes:
    """A record in the finished generations' format, so their sweep reads its age too. An
    intent's ``batch_id`` is empty, which workers without intents read as no ticket at all
    (they batch the call anew, as before intents)."""
    body = dict(ticket.__dict__)
    if not ticket.input_file_id:
        del body["input_file_id"]  # a ticket as before intents
    return stamped(body, at_ms)


def decode_ticket(value: bytes) -> Ticket | None:
    """The ticket in a record; None when it is not one this worker can read."""
    body = body_of(value)
    if body is None:
        return None
    names = ("provider", "model", "custom_id", "prompt_sha256")
    try:
        fields = {k: body[k] for k in names}
        place = {"batch_id": body["batch_id"], "input_file_id": body.get("input_file_id", "")}
    except (ValueError, TypeError, KeyError):
        return None
    if not all(isinstance(v, str) and v for v in fields.values()):
        return None
    if not all(isinstance(v, str) for v in place.values()) or not any(place.values()):
        return None
    if not CUSTOM_ID.match(fields["custom_id"]):
        return None
    return Ticket(**fields, **place)


class BatchTickets:
    """Reads and writes tickets in the store; writing waits for the broker's acknowledgement."""

    def __init__(self, store: TicketStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def find(self, request: GenerationRequest) -> Ticket | None:
        value = self._store.get(ticket_key(request))
        return decode_ticket(value) if value is not None else None

    async def record(self, request: GenerationRequest, ticket: Ticket) -> bool:
        """True once durable; False when the broker refused (a crash would pay again)."""
        value = encode_ticket(ticket, int(self._clock() * 1000))
        try:
            await self._store.record(ticket_key(request), value)
        except KafkaError as exc:
            log.warning(
                "%s attempt %d: its place (%s) not recorded (%s)",
                request.request_id,
                request.attempt,
                ticket.place,
                exc,
            )
            return False
        return True
