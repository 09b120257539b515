"""A dict-backed record store for the paid-call records (agents/inference/paid_once.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka.errors import KafkaTimeoutError


@dataclass
class DictStore:
    """The record store as the table behaves: get, and a write that is acknowledged or fails."""

    data: dict[bytes, bytes] = field(default_factory=dict)
    refuse: bool = False
    writes: list[bytes] = field(default_factory=list)

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    async def record(self, key: bytes, value: bytes) -> None:
        self.writes.append(key)
        if self.refuse:
            raise KafkaTimeoutError()
        self.data[key] = value
