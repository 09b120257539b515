"""Produce to the line from a Python service: submit 3 requests, wait for their completions.

Run it against the demo line (a broker and a worker on the default settings)::

    assetline broker up            # a local Kafka on 127.0.0.1:9092
    assetline worker &             # the line's stages
    python examples/producers/python_producer.py

Settings come from ``ASSETLINE_*`` variables (and ``KAFKA_BOOTSTRAP``), as for the worker, so
the script talks to whichever line the worker serves. Exits 0 only when every request was
DELIVERED (1 if a completion is missing or says otherwise).
"""

from __future__ import annotations

import asyncio
import hashlib
import sys

from assetline import (
    AssetKind,
    CompletionStatus,
    Constraints,
    GenerationRequest,
    LineClient,
    Settings,
)
from streams.topics import ensure_topics, line_topic_specs


def build_requests() -> list[GenerationRequest]:
    """Ids derived from the intent, so running the script twice does not generate twice."""
    out = []
    for persona in ("trail runner", "urban gardener", "retro gamer"):
        key = hashlib.sha256(f"sdk-example|{persona}".encode()).hexdigest()[:16]
        out.append(
            GenerationRequest(
                request_id=f"sdk-example-{key}",
                idempotency_key=key,
                tenant="acme",
                campaign_id="sdk-example",
                kind=AssetKind.TEXT,
                prompt_template="Write a short headline for ${persona} about ${product}",
                variables={"persona": persona, "product": "the Aurora water bottle"},
                constraints=Constraints(max_chars=200),
            )
        )
    return out


async def main(timeout: float = 120.0) -> int:
    settings = Settings()  # ASSETLINE_* from the environment, else the demo's defaults
    await ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings))
    requests = build_requests()
    async with LineClient(settings) as client:
        sent = await client.submit(requests)
        print(f"submitted {sent} request(s); waiting up to {timeout:.0f}s ...")
        done = await client.await_completions([r.request_id for r in requests], timeout)
    for request in requests:
        completion = done.get(request.request_id)
        if completion is None:
            print(f"{request.request_id}  MISSING")
        else:
            print(
                f"{request.request_id}  {completion.status.value:<9}  "
                f"cost ${completion.cost:.4f}  {completion.location or completion.reasons}"
            )
    delivered = [c for c in done.values() if c.status is CompletionStatus.DELIVERED]
    return 0 if len(delivered) == len(requests) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
