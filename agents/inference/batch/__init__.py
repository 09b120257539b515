"""Deadline-tolerant calls through the providers' batch APIs (about half the price).

``_clients``: OpenAI's Batch API and Anthropic's Message Batches behind one small interface;
``_collector``: requests gathered into batches (size and age bounded), each given its result or
a reason to fall back; ``_lanes``: which requests are batched and until when they wait;
``_metrics``: batches, outcomes, waiting calls and their waits; ``_tickets``: each request's
place in a submitted batch (for OpenAI, first its intent: the uploaded file the batch is about to
be created on), recorded durably so its next owner follows that batch after a crash.
"""

from agents.inference.batch._clients import (
    AnthropicBatchClient,
    BatchClient,
    BatchItem,
    BatchStatus,
    OpenAIBatchClient,
    UploadFirst,
    upload_first,
)
from agents.inference.batch._collector import BatchCollector, BatchGate, BatchStats, bounded
from agents.inference.batch._lanes import (
    BatchLanes,
    build_batch_clients,
    reserve_s,
)
from agents.inference.batch._metrics import BatchMetrics
from agents.inference.batch._tickets import BatchTickets, Ticket, TicketStore, prompt_digest

__all__ = [
    "AnthropicBatchClient",
    "BatchClient",
    "BatchCollector",
    "BatchGate",
    "BatchItem",
    "BatchLanes",
    "BatchMetrics",
    "BatchStats",
    "BatchStatus",
    "BatchTickets",
    "OpenAIBatchClient",
    "Ticket",
    "TicketStore",
    "UploadFirst",
    "bounded",
    "build_batch_clients",
    "prompt_digest",
    "reserve_s",
    "upload_first",
]
