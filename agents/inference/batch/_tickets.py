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

The window between the provider creating the batch and the broker acknowledging the record
(milliseconds) is the one left where a crash still pays twice. A record is trusted only for
the same rung (provider, wire model) and the same prompt (its SHA-256); anything else, or a
record this worker cannot read, is ignored: the call is batched anew.
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
    """A call's place in a provider batch."""

    provider: str
    model: str
    batch_id: str
    custom_id: str
    prompt_sha256: str


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
    """A record in the finished generations' format, so their sweep reads its age too."""
    return stamped(ticket.__dict__, at_ms)


def decode_ticket(value: bytes) -> Ticket | None:
    """The ticket in a record; None when it is not one this worker can read."""
    body = body_of(value)
    if body is None:
        return None
    try:
        fields = {k: body[k] for k in ("provider", "model", "batch_id", "custom_id")}
        fields["prompt_sha256"] = body["prompt_sha256"]
    except (ValueError, TypeError, KeyError):
        return None
    if not all(isinstance(v, str) and v for v in fields.values()):
        return None
    if not CUSTOM_ID.match(fields["custom_id"]):
        return None
    return Ticket(**fields)


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
                "%s attempt %d: batch %s not recorded (%s)",
                request.request_id,
                request.attempt,
                ticket.batch_id,
                exc,
            )
            return False
        return True
