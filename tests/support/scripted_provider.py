"""An in-process provider that answers from a script, for routing logic tests.

Adapters are tested against real HTTP servers; the router's decisions (retry, fail over,
stop) are tested here with exact control of every outcome and no sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from agents.inference.providers.base import Generated, ProviderCall, ProviderError, Usage


@dataclass(frozen=True)
class Slow:
    """Answer after ``seconds`` (real time), with ``then``."""

    seconds: float
    then: Generated | ProviderError | None = None


Step = Generated | ProviderError | Slow


def served(name: str, usage: Usage | None = None, data: bytes = b"asset") -> Generated:
    return Generated(data, "text/plain; charset=utf-8", name, f"{name}-served", usage or Usage())


class ScriptedProvider:
    """Plays ``script`` one step per call, repeating the last step when it runs out."""

    def __init__(self, name: str, script: Sequence[Step] = ()) -> None:
        self.name = name
        self.script = list(script) or [served(name)]
        self.calls: list[ProviderCall] = []
        self.cancelled = 0

    async def generate(self, call: ProviderCall) -> Generated:
        index = min(len(self.calls), len(self.script) - 1)
        self.calls.append(call)
        step = self.script[index]
        if isinstance(step, Slow):
            try:
                await asyncio.sleep(step.seconds)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            step = step.then or served(self.name)
        if isinstance(step, ProviderError):
            raise step
        return step
