"""Deadline-tolerant calls through the providers' batch APIs (about half the price).

``_clients``: OpenAI's Batch API and Anthropic's Message Batches behind one small interface;
``_collector``: requests gathered into batches (size and age bounded), each given its result or
a reason to fall back; ``_lanes``: which requests are batched and until when they wait;
``_metrics``: batches, outcomes, waiting calls and their waits.
"""

from agents.inference.batch._clients import (
    AnthropicBatchClient,
    BatchClient,
    BatchItem,
    BatchStatus,
    OpenAIBatchClient,
)
from agents.inference.batch._collector import BatchCollector, BatchStats
from agents.inference.batch._lanes import (
    BatchLanes,
    build_batch_clients,
    reserve_s,
)
from agents.inference.batch._metrics import BatchMetrics

__all__ = [
    "AnthropicBatchClient",
    "BatchClient",
    "BatchCollector",
    "BatchItem",
    "BatchLanes",
    "BatchMetrics",
    "BatchStats",
    "BatchStatus",
    "OpenAIBatchClient",
    "build_batch_clients",
    "reserve_s",
]
