"""Attempt numbering: which try of which replay generation an event belongs to.

The deliver ledger publishes a completion only when its attempt is higher than the last
completed one of the request (:func:`agents.deliver.ledger.already_completed`). The line itself
counts attempts 1..10 (a profile's ``max_attempts`` is at most 10), so a replay moves the
attempt into a *generation* band: ``generation * REPLAY_STRIDE + base``, where ``base`` is the
attempt within its band. That number is

* higher than any attempt the line reached before the replay, so the replay completes anew;
* a function of the source record and the generation only, so replaying the same range (or
  re-driving the same dead letter) again yields the same attempt, which the ledger drops.

Producers and consumers in other languages read ``attempt`` with this meaning, so it lives with
the contracts.
"""

from __future__ import annotations

from typing import Final

#: Attempts of one generation; above the line's own maximum of 10 attempts.
REPLAY_STRIDE: Final = 1000
#: Avro ``int`` carries the attempt.
MAX_ATTEMPT: Final = 2**31 - 1


def generation_of(attempt: int) -> int:
    """0 for the line's own attempts, n for an attempt made by replay generation n."""
    return attempt // REPLAY_STRIDE


def attempt_in_generation(attempt: int) -> int:
    """1 for a generation's first try, 2 for its first re-generation, ... (replays included)."""
    return attempt % REPLAY_STRIDE


def replay_attempt(attempt: int, generation: int | None = None) -> int:
    """The attempt a replay of ``attempt`` carries (see the module docstring)."""
    gen = generation_of(attempt) + 1 if generation is None else generation
    if gen < 1:
        raise ValueError(f"a replay generation starts at 1, got {gen}")
    new = gen * REPLAY_STRIDE + attempt % REPLAY_STRIDE
    if new > MAX_ATTEMPT:
        raise ValueError(f"generation {gen} makes attempt {new}, beyond an Avro int")
    return new
