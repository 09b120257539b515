"""Deadline-tolerant calls through the providers' batch APIs (about half the price).

``_clients``: OpenAI's Batch API and Anthropic's Message Batches behind one small interface.
"""

from agents.inference.batch._clients import (
    AnthropicBatchClient,
    BatchClient,
    BatchItem,
    BatchStatus,
    OpenAIBatchClient,
)

__all__ = [
    "AnthropicBatchClient",
    "BatchClient",
    "BatchItem",
    "BatchStatus",
    "OpenAIBatchClient",
]
