"""The span of one provider call, with OpenTelemetry's GenAI semantic-convention attributes.

https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/: a CLIENT span named
``{gen_ai.operation.name} {gen_ai.request.model}``. Only names, models, counts and codes go
into it: never a prompt, a response, or anything from a request header or a key. Without
exported spans (:func:`streams.tracing.child_span`) this costs nothing but a call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from agents.inference.providers.base import Generated, ProviderCall, ProviderError
from schemas.records import AssetKind
from streams.tracing import CLIENT, Span, child_span

#: gen_ai.provider.name for the adapters whose vendor the convention names; the rest are ours.
_VENDORS: Final = {"openai": "openai", "anthropic": "anthropic"}
CHAT: Final = "chat"
GENERATE_CONTENT: Final = "generate_content"


def operation_of(call: ProviderCall) -> str:
    """``generate_content`` for images (no chat turn), ``chat`` for text, JSON, code, judges."""
    return GENERATE_CONTENT if call.request.kind is AssetKind.IMAGE else CHAT


def provider_name(adapter_type: str) -> str:
    """The convention's value for known vendors, ``assetline.<adapter>`` for the others."""
    return _VENDORS.get(adapter_type, f"assetline.{adapter_type}")


@contextmanager
def call_span(call: ProviderCall, provider: str, adapter_type: str) -> Iterator[Span]:
    """A span around one call to ``provider`` (its routing-file name) of type ``adapter_type``;
    :func:`record_outcome` fills in what came back."""
    operation = operation_of(call)
    attributes: dict[str, str | int] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider_name(adapter_type),
        "gen_ai.request.model": call.model,
        "assetline.provider": provider,
        "assetline.request_id": call.request.request_id,
        "assetline.attempt": call.request.attempt,
    }
    if call.max_output_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = call.max_output_tokens
    with child_span(f"{operation} {call.model}", kind=CLIENT, attributes=attributes) as span:
        yield span


def record_outcome(span: Span, outcome: Generated | ProviderError) -> None:
    """Usage, the model that answered, or the error code (never the error's text)."""
    usage = outcome.usage
    attributes: dict[str, str | int] = {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
    }
    if isinstance(outcome, Generated):
        if outcome.model_version:
            attributes["gen_ai.response.model"] = outcome.model_version
        span.set_attributes(attributes)
        return
    span.set_attributes(attributes)
    span.set_error(outcome.code)
