"""Codec throughput: GenerationRequest encodes/s and decodes/s, per framing.

    python -m bench.codec [--seconds 2]

``decode`` is what a stage calls (Avro read + pydantic validation); ``decode_dict`` is the Avro
read alone. Target: decode >= 100,000 requests/s on the 2-core CI machine. The Avro read uses
cavro when installed (writer == reader schema), fastavro otherwise; the last line says which.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from schemas.records import AssetKind, Constraints, GenerationRequest
from streams.codecs import Codecs

TARGET_DECODES = 100_000


def requests(count: int = 16) -> list[GenerationRequest]:
    """A mix of small and larger requests, like the integration tests send."""
    out = []
    for i in range(count):
        out.append(
            GenerationRequest(
                request_id=f"bench-{i:05d}",
                idempotency_key=f"bench-{i:05d}",
                tenant="acme",
                campaign_id="bench",
                kind=(AssetKind.IMAGE, AssetKind.TEXT)[i % 2],
                prompt_template="Banner for ${persona} in ${locale}",
                variables={"persona": f"persona-{i % 7}", "locale": "en-GB"},
                constraints=Constraints(width=256, height=192, format="png")
                if i % 2 == 0
                else Constraints(max_chars=120),
                metadata={"trace": f"{i:032x}"} if i % 4 == 0 else {},
                created_at=datetime(2024, 5, 17, 9, 30, 15, 123000, tzinfo=UTC),
            )
        )
    return out


def rate(func: Callable[[Any], object], items: list[Any], seconds: float) -> float:
    """Calls per second of ``func`` over ``items``, best of three rounds."""
    best = 0.0
    for _ in range(3):
        done, start = 0, time.perf_counter()
        deadline = start + seconds / 3
        while time.perf_counter() < deadline:
            for item in items:
                func(item)
            done += len(items)
        best = max(best, done / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description="GenerationRequest codec throughput")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    args = parser.parse_args()
    sample = requests()
    single = Codecs.load().request
    confluent = Codecs.load(wire_formats={"requests": "confluent"}).request
    confluent.bind_registry_id(1)
    rows = []
    for name, codec in (("single-object", single), ("confluent", confluent)):
        frames = [codec.encode(r) for r in sample]
        rows.append(
            (
                name,
                rate(codec.encode, sample, args.seconds),
                rate(codec.decode, frames, args.seconds),
                rate(codec.decode_dict, frames, args.seconds),
                sum(map(len, frames)) / len(frames),
            )
        )
    print(f"{'framing':<14} {'encode/s':>10} {'decode/s':>10} {'decode_dict/s':>14} {'bytes':>6}")
    for name, enc, dec, raw, size in rows:
        print(f"{name:<14} {enc:>10,.0f} {dec:>10,.0f} {raw:>14,.0f} {size:>6.0f}")
    worst = min(row[2] for row in rows)
    verdict = "met" if worst >= TARGET_DECODES else "NOT met"
    print(f"target decode >= {TARGET_DECODES:,}/s: {verdict} (slowest {worst:,.0f}/s)")
    reader = "cavro fast path" if single._fast is not None else "fastavro (cavro not installed)"
    print(f"avro reader: {reader}")


if __name__ == "__main__":
    main()
