"""A slow OpenAI-shaped provider and a slow DAM, in a process of their own (bench.providers).

    python -m bench.slow_provider [--latency-min 1] [--latency-max 3] [--max-in-flight 256]
                                  [--dam-delay 1] [--seed 0]

  POST /v1/chat/completions  a chat completion after uniform(latency-min, latency-max) s; a call
                             arriving while max-in-flight calls are being answered gets HTTP 429
                             (``Retry-After: 1``, OpenAI's error body) at once, like a provider
                             enforcing a concurrency quota;
  PUT  /dam/{path}           201 after dam-delay s: a DAM that takes its time over every asset;
  GET  /stats                the counters below, as JSON;
  GET  /calls?run=R          each call of run R: request id -> [[arrived, answered], ...] in
                             wall-clock seconds (answered null for a 429), to break a request's
                             time down by hop;
  POST /reset                sets them to zero (a scenario starts with its own).

Counters: ``calls`` (chat calls received), ``answered`` (200s), ``rate_limited`` (429s),
``in_flight`` / ``max_in_flight`` (chat calls being answered now / at most), ``dam_puts``,
``dam_max_in_flight``.

asyncio (aiohttp) in its own process, so a sleeping call costs a coroutine, not a thread, and
the bench's own work never slows the server down. Prints ``listening <url>`` once it accepts
connections; :class:`SlowServer` starts it as a child process and reads its counters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

from tests.support.provider_server import openai_chat_response, openai_error

CHAT_PATH = "/v1/chat/completions"
#: A bench prompt names its request as ``request <run>-<6 digits>``; calls are grouped by run.
_RUN = re.compile(r"request ((\S+)-\d{6})")


@dataclass
class Counters:
    calls: int = 0
    answered: int = 0
    rate_limited: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    dam_puts: int = 0
    dam_in_flight: int = 0
    dam_max_in_flight: int = 0
    #: per run named in the prompts: calls, and the first and last call's arrival (s since
    #: the last reset): when a run's requests reached the provider, not only whether
    runs: dict[str, dict[str, float]] = field(default_factory=dict)
    #: per run: request id -> [arrived, answered] wall-clock times of each of its calls
    calls_of: dict[str, dict[str, list[list[float | None]]]] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)

    def arrived(self, run: str) -> None:
        at = round(time.monotonic() - self.since, 3)
        seen = self.runs.setdefault(run, {"calls": 0, "first_s": at, "last_s": at})
        seen["calls"] += 1
        seen["last_s"] = at

    def reset(self) -> None:
        # Calls still being answered stay counted as in flight: they are.
        in_flight, dam_in_flight = self.in_flight, self.dam_in_flight
        self.__init__()  # type: ignore[misc]
        self.in_flight = self.max_in_flight = in_flight
        self.dam_in_flight = self.dam_max_in_flight = dam_in_flight


@dataclass
class SlowApp:
    latency_min_s: float
    latency_max_s: float
    max_in_flight: int
    dam_delay_s: float
    rng: random.Random
    counters: Counters = field(default_factory=Counters)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post(CHAT_PATH, self.chat)
        app.router.add_put("/dam/{tail:.*}", self.dam)
        app.router.add_get("/stats", self.stats)
        app.router.add_get("/calls", self.calls)
        app.router.add_post("/reset", self.reset)
        return app

    async def chat(self, request: web.Request) -> web.Response:
        c = self.counters
        c.calls += 1
        body = await request.json()
        text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        run = _RUN.search(text)
        call: list[float | None] = [time.time(), None]
        if run is not None:
            c.arrived(run.group(2))
            c.calls_of.setdefault(run.group(2), {}).setdefault(run.group(1), []).append(call)
        if c.in_flight >= self.max_in_flight:
            c.rate_limited += 1
            error = openai_error("Rate limit reached: too many requests in flight",
                                 type="requests", code="rate_limit_exceeded")  # fmt: skip
            return web.json_response(error, status=429, headers={"Retry-After": "1"})
        c.in_flight += 1
        c.max_in_flight = max(c.max_in_flight, c.in_flight)
        try:
            await asyncio.sleep(self.rng.uniform(self.latency_min_s, self.latency_max_s))
        finally:
            c.in_flight -= 1
        c.answered += 1
        call[1] = time.time()
        reply = openai_chat_response(f"Made for: {text[-60:]}", model=body.get("model", "m"))
        return web.json_response(reply)

    async def dam(self, request: web.Request) -> web.Response:
        c = self.counters
        await request.read()
        c.dam_in_flight += 1
        c.dam_max_in_flight = max(c.dam_max_in_flight, c.dam_in_flight)
        try:
            await asyncio.sleep(self.dam_delay_s)
        finally:
            c.dam_in_flight -= 1
        c.dam_puts += 1
        return web.Response(status=201)

    async def stats(self, _: web.Request) -> web.Response:
        c = self.counters
        hidden = ("dam_in_flight", "since", "calls_of")
        return web.json_response({k: v for k, v in vars(c).items() if k not in hidden})

    async def calls(self, request: web.Request) -> web.Response:
        return web.json_response(self.counters.calls_of.get(request.query.get("run", ""), {}))

    async def reset(self, _: web.Request) -> web.Response:
        self.counters.reset()
        return web.json_response({"ok": True})


async def serve(args: argparse.Namespace) -> None:
    slow = SlowApp(args.latency_min, args.latency_max, args.max_in_flight, args.dam_delay,
                   random.Random(args.seed))  # fmt: skip
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    runner = web.AppRunner(slow.app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    # A deep accept backlog: hundreds of calls open connections in the same millisecond.
    await web.SockSite(runner, sock, backlog=4096).start()
    print(f"listening http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


class SlowServer:
    """``python -m bench.slow_provider`` as a child process; ``url`` is its base URL."""

    def __init__(
        self,
        latency: tuple[float, float] = (1.0, 3.0),
        max_in_flight: int = 256,
        dam_delay_s: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.latency = latency
        self.max_in_flight = max_in_flight
        self.dam_delay_s = dam_delay_s
        self.seed = seed
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def capacity_per_s(self) -> float:
        """Calls per second it can answer at most: max in flight / mean latency."""
        return self.max_in_flight / (sum(self.latency) / 2)

    def start(self) -> SlowServer:
        command = [
            sys.executable, "-m", "bench.slow_provider",
            "--latency-min", str(self.latency[0]), "--latency-max", str(self.latency[1]),
            "--max-in-flight", str(self.max_in_flight), "--dam-delay", str(self.dam_delay_s),
            "--seed", str(self.seed),
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line.startswith("listening "):
            self.stop()
            raise SystemExit(f"bench.slow_provider did not start: {line!r}")
        self.url = line.split(" ", 1)[1]
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(self.url + "/stats")
            response.raise_for_status()
            return dict(response.json())

    async def calls(self, run: str) -> dict[str, list[list[float | None]]]:
        """Each call of ``run`` by request id: [arrived, answered] wall-clock times."""
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(self.url + "/calls", params={"run": run})
            response.raise_for_status()
            return dict(response.json())

    async def reset(self) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            (await client.post(self.url + "/reset")).raise_for_status()

    def __enter__(self) -> SlowServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-min", type=float, default=1.0)
    parser.add_argument("--latency-max", type=float, default=3.0)
    parser.add_argument("--max-in-flight", type=int, default=256)
    parser.add_argument("--dam-delay", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
