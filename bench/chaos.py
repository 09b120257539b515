"""Chaos suite (issue 14 part 9): the line under kills, rebalances and a broker outage.

    python -m bench.chaos [--quick] [--scenarios kill,rebalance,broker] [--n 900]
                          [--kill-every 15] [--rounds 5] [--broker-down 20] [--repeat 5]
                          [--json PATH]

Everything is real and on 127.0.0.1: a Kafka broker (``assetline.dev.broker.LocalBroker``; the
broker scenario always stops and restarts one this harness owns, keeping its data dir), worker
processes (``WorkerProcess``, ``kill -9`` by pid), a slow OpenAI-shaped provider
(tests.support.provider_server: 1-3 s per call, 10% HTTP 500) and a webhook receiver
(tests.support.webhook_receiver) that fails its first calls, one of them with a ``Retry-After``
longer than the notify consumers' max poll interval. About 5% of what goes on ``.requests`` is
poison: undecodable bytes, invalid UTF-8 inside a request, requests over max_request_bytes, and
forged attempt numbers.

Scenarios (requests are fed at a steady pace through the fault window, so faults hit work):

  kill       three workers, one ``kill -9``'d every ``--kill-every`` s for ``--rounds`` rounds,
             restarted at once (same data dir);
  rebalance  two workers; a third joins a third of the way in, one leaves (SIGTERM) at two thirds;
  broker     two workers; the burst is in, then the broker is stopped for ``--broker-down`` s.

Checks, from the topics alone (``read_to_end`` + ``Codecs``) and the two servers' own logs:

  lost           requests with no terminal completion of attempt generation 0;
  doubled        extra completions for one (request, generation);
  paid twice     provider calls started after the same request's finished generation had been
                 recorded on ``.generations`` (the line knew the call was done and paid again);
  answered unrecorded
                 provider calls started after a successful answer to the same request that
                 its worker had not recorded yet (it was killed between answer and record):
                 calls in flight at the crash, listed apart (calls whose client was gone before
                 the answer do not count at all);
  dead-lettered  poison messages found on ``.deadletter`` with an error code and reason
                 (``poison`` = how many were sent);
  hooks missing  webhook ids queued on ``.webhooks`` never answered 2xx by the receiver;
  recovery s     from the (last) fault to the last completion the harness saw;
  self-exits     workers that exited without the harness killing or stopping them.

Prints a table and writes JSON (bench/results/chaos.json, or chaos-quick.json with --quick).
The machinery is tests/support/chaos.py; tests/integration/test_chaos.py runs the quick
profile in ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from assetline.dev.broker import LocalBroker, free_ports
from tests.support.chaos import FULL, QUICK, SCENARIOS, Env, Profile, Result, run_suite, table
from tests.support.provider_server import ProviderServer
from tests.support.webhook_receiver import Receiver


def profile_from(args: argparse.Namespace) -> Profile:
    profile = QUICK if args.quick else FULL
    overrides = {
        "n": args.n,
        "kill_every_s": args.kill_every,
        "rounds": args.rounds,
        "broker_down_s": args.broker_down,
        "feed_s": args.feed,
        "timeout_s": args.timeout,
    }
    return replace(profile, **{k: v for k, v in overrides.items() if v is not None})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the small profile CI runs")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--n", type=int, help="ordinary requests per scenario")
    parser.add_argument("--feed", type=float, help="seconds over which requests are fed")
    parser.add_argument("--kill-every", type=float)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--broker-down", type=float)
    parser.add_argument("--timeout", type=float, help="seconds per scenario")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the suite this many times in a row"
    )
    args = parser.parse_args()
    # The harness's own clients retry through the faults on purpose; their warnings are noise.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not scenarios or not set(scenarios) <= set(SCENARIOS):
        raise SystemExit(f"--scenarios takes some of {','.join(SCENARIOS)}")
    profile = profile_from(args)
    out = args.json or Path(f"bench/results/chaos{'-quick' if args.quick else ''}.json")
    root = Path(tempfile.mkdtemp(prefix="assetline-chaos-"))
    port, ctrl = free_ports(2)
    broker = LocalBroker(root / "kafka", port=port, controller_port=ctrl)
    bootstrap = broker.up(timeout=120)
    provider = ProviderServer().start()
    receiver = Receiver().start()
    env = Env(bootstrap, root, profile, provider, receiver, broker)
    runs: list[list[Result]] = []
    try:
        for run in range(args.repeat):
            if args.repeat > 1:
                print(f"== run {run + 1} of {args.repeat}", flush=True)
            results = asyncio.run(run_suite(env, scenarios))
            runs.append(results)
            print(table(results))
            for r in results:
                for note in r.notes:
                    print(f"  {r.scenario}: {note.splitlines()[0] if note else note}")
            print(flush=True)
    finally:
        receiver.stop()
        provider.stop()
        broker.down()
    passed = sum(all(r.ok for r in results) for results in runs)
    if args.repeat > 1:
        print(f"{passed} of {len(runs)} runs passed every check")
    document = {
        "command": " ".join(["python -m bench.chaos", *sys.argv[1:]]),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "profile": asdict(profile),
        "results": [{**asdict(r), "ok": r.ok} for r in runs[-1]] if runs else [],
        "runs": [[{**asdict(r), "ok": r.ok} for r in results] for results in runs],
        "runs_passed": passed,
        "logs": str(root / "logs"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2))
    print(f"wrote {out} (worker logs under {root / 'logs'})")


if __name__ == "__main__":
    main()
