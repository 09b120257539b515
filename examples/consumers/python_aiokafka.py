"""Read assetline completions with plain aiokafka + fastavro: no assetline install needed.

Values use Avro single-object encoding: ``C3 01`` + 8-byte little-endian CRC-64-AVRO
fingerprint of the writer schema + Avro body. The writer schema is picked by fingerprint from
the published ``schemas/*.avsc`` files, so older and newer writers both decode.

    python python_aiokafka.py --bootstrap 127.0.0.1:9092 --topic assetline.completed \
        --schemas path/to/schemas --count 10

Prints one JSON object per completion.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import struct
import sys
from pathlib import Path
from typing import Any

import fastavro
from aiokafka import AIOKafkaConsumer
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


async def consume(args: argparse.Namespace) -> int:
    by_fp = load_schemas(Path(args.schemas))
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    seen = 0
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.timeout
        while seen < args.count and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for message in records:
                    print(json.dumps(decode(message.value, by_fp), default=str), flush=True)
                    seen += 1
    finally:
        await consumer.stop()
    return 0 if seen >= args.count else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="assetline.completed")
    parser.add_argument("--schemas", default="schemas", help="folder of assetline's *.avsc")
    parser.add_argument("--count", type=int, default=1, help="stop after this many")
    parser.add_argument("--timeout", type=float, default=60.0)
    return asyncio.run(consume(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
