"""The line's throughput over SASL_SSL beside PLAINTEXT: same broker, same bench, one run.

    python -m bench.secured [--n 4000] [--rounds 1] [--partitions 6] [--mechanism SCRAM-SHA-512]

One local Apache Kafka with a PLAINTEXT and a SASL_SSL listener (tests/support/secure_kafka.py:
certificates made with ``cryptography``, SCRAM users created at format time). Each round runs
bench/line.py's burst phase (N requests, half 512x512 PNG, half copy, one worker, warmed up,
fresh topics) once per listener, PLAINTEXT first; with several rounds the order alternates so
neither always runs on a warmer broker. Prints both rows and SASL_SSL's cost in throughput,
and writes bench/results/secured.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from assetline.dev.broker import LocalBroker
from bench.line import PhaseResult, print_table, run_phase, settings_for, start_workers, warm_up
from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs
from tests.support.secure_kafka import PASSWORD, USER, Pki, make_pki, secure_broker


def listener_settings(
    broker: LocalBroker, pki: Pki, secured: bool, root: Path, args: argparse.Namespace
) -> Settings:
    base = settings_for(broker.bootstrap, root, args.partitions)
    if not secured:
        return base
    return base.model_copy(
        update={
            "kafka_bootstrap": broker.bootstrap_of("SECURE"),
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": args.mechanism,
            "kafka_sasl_username": USER,
            "kafka_sasl_password": SecretStr(PASSWORD),
            "kafka_ssl_cafile": pki.ca,
        }
    )


async def burst(settings: Settings, n: int, logs: Path, name: str) -> PhaseResult:
    await ensure_topics(settings, line_topic_specs(settings))
    (worker,) = start_workers(settings, 1, logs)
    try:
        await warm_up(settings)
        return await run_phase(name, settings, n, None, [worker])
    finally:
        worker.stop()


async def main_async(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    pki = make_pki(root / "pki")
    broker = secure_broker(root / "kafka", pki, heap="1g")
    broker.up(timeout=120)
    rows: list[dict[str, object]] = []
    try:
        for round_ in range(args.rounds):
            order = (False, True) if round_ % 2 == 0 else (True, False)
            for secured in order:
                name = "SASL_SSL" if secured else "PLAINTEXT"
                settings = listener_settings(broker, pki, secured, root, args)
                result = await burst(settings, args.n, root / "logs", name)
                rows.append(result.row())
    finally:
        broker.down()
    by_name: dict[str, list[float]] = {}
    for row in rows:
        by_name.setdefault(str(row["phase"]), []).append(float(row["assets_per_s"]))  # type: ignore[arg-type]
    plain = sum(by_name["PLAINTEXT"]) / len(by_name["PLAINTEXT"])
    secure = sum(by_name["SASL_SSL"]) / len(by_name["SASL_SSL"])
    return {
        "rows": rows,
        "n": args.n,
        "rounds": args.rounds,
        "mechanism": args.mechanism,
        "cpus": os.cpu_count(),
        "plaintext_assets_per_s": round(plain, 1),
        "sasl_ssl_assets_per_s": round(secure, 1),
        "sasl_ssl_cost_pct": round(100.0 * (1.0 - secure / plain), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--mechanism", choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"), default="SCRAM-SHA-512"
    )
    parser.add_argument("--json", type=Path, default=Path("bench/results/secured.json"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="assetline-bench-secured-"))
    result = asyncio.run(main_async(args, root))
    print_table(result["rows"])
    print(
        f"\nSASL_SSL ({args.mechanism}) {result['sasl_ssl_assets_per_s']} assets/s vs PLAINTEXT "
        f"{result['plaintext_assets_per_s']} assets/s: SASL_SSL costs "
        f"{result['sasl_ssl_cost_pct']}% of PLAINTEXT throughput"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
