"""Read assetline completions with plain confluent-kafka + fastavro: no assetline install.

Values use Avro single-object encoding (``C3 01`` + 8-byte CRC-64-AVRO fingerprint + body),
not Confluent's registry framing unless the line is configured for it, so confluent-kafka's
AvroDeserializer is not used: the writer schema is picked by fingerprint from the published
``schemas/*.avsc`` files.

    python python_confluent.py --bootstrap 127.0.0.1:9092 --topic assetline.completed \
        --schemas path/to/schemas --count 10

Prints one JSON object per completion.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Consumer
from fastavro.schema import fingerprint, to_parsing_canonical_form

HEADER = struct.Struct("<2s8s")  # magic, fingerprint


def load_schemas(folder: Path) -> dict[bytes, Any]:
    """Writer schemas by their 8-byte fingerprint, as written on the wire."""
    by_fp: dict[bytes, Any] = {}
    for path in sorted(folder.glob("*.avsc")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
        by_fp[fp] = fastavro.parse_schema(schema, named_schemas={})
    return by_fp


def decode(value: bytes, by_fp: dict[bytes, Any]) -> dict[str, Any]:
    magic, fp = HEADER.unpack_from(value)
    if magic != b"\xc3\x01":
        raise ValueError(f"not single-object encoded (starts {value[:2].hex()})")
    record: dict[str, Any] = fastavro.schemaless_reader(
        io.BytesIO(value[HEADER.size :]), by_fp[fp], None
    )
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="assetline.completed")
    parser.add_argument("--schemas", default="schemas", help="folder of assetline's *.avsc")
    parser.add_argument("--count", type=int, default=1, help="stop after this many")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    by_fp = load_schemas(Path(args.schemas))
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"example-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([args.topic])
    seen = 0
    deadline = time.monotonic() + args.timeout
    try:
        while seen < args.count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            print(json.dumps(decode(message.value(), by_fp), default=str), flush=True)
            seen += 1
    finally:
        consumer.close()
    return 0 if seen >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
