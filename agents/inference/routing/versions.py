"""Canary and shadow versions of an alias: which branch a request takes.

An alias of the routing file may name a ``canary`` and a ``shadow`` (each a pinned model like a
chain entry, plus a ``share``). A request routed through the alias draws a number in [0, 1)
from a hash of its id and the alias; below the canary's share it is served by the canary first
(the alias's chain is its failover), and delivered like any other. It draws a second,
independent number for the shadow: below the shadow's share the request is mirrored: the
shadow model generates it too, validate judges that copy, and nothing else happens to it
(never delivered, never re-generated, no completion).

The draw is a pure function of the request id and the alias name, so a re-generation, a replay
or a redelivery of the same request takes the same branch on any worker. A request that pins
a provider or a version (also inside an alias) asked for that model: it takes no branch.

Every record of a request of an alias with versions says which branch it took (``rung``:
``primary``, ``canary`` or ``shadow``), which is what ``assetline models compare`` groups by.
"""

from __future__ import annotations

import hashlib
from typing import Final

from agents.inference.routing.config import Alias, ChainEntry, RoutingConfig, VersionSplit
from schemas.attempts import attempt_in_generation
from schemas.records import GenerationRequest

PRIMARY: Final = "primary"
CANARY: Final = "canary"
SHADOW: Final = "shadow"
#: The branches, in the order people read them.
RUNGS: Final = (PRIMARY, CANARY, SHADOW)

#: Header on a ``.raw`` record that is a shadow's (the record's ``rung`` says it too).
SHADOW_HEADER: Final = "assetline.shadow"

_SCALE: Final = float(2**64)


def draw(request_id: str, alias: str, salt: str) -> float:
    """A number in [0, 1), uniform over request ids, fixed for (request, alias, salt)."""
    digest = hashlib.sha256(f"{salt}\x1f{alias}\x1f{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def takes(split: VersionSplit | None, request_id: str, alias: str, salt: str) -> bool:
    """Whether the request falls into ``split``'s share (``salt`` names the branch)."""
    return split is not None and draw(request_id, alias, salt) < split.share


def versioned_alias(request: GenerationRequest, config: RoutingConfig) -> str | None:
    """The alias whose versions apply to ``request``: the one it is routed through, when that
    alias has a canary or a shadow and the request pins neither provider nor version."""
    spec = request.model
    if spec.provider is not None or spec.version is not None:
        return None
    name = spec.alias if spec.alias is not None else config.default_alias_for(request.kind)
    alias = config.aliases.get(name)
    if alias is None or (alias.canary is None and alias.shadow is None):
        return None
    return name


def rung_of(request: GenerationRequest, config: RoutingConfig) -> str | None:
    """``canary`` or ``primary`` for a request of an alias with versions, else None (the
    records of aliases without versions stay as they were)."""
    name = versioned_alias(request, config)
    if name is None:
        return None
    return (
        CANARY if takes(config.aliases[name].canary, request.request_id, name, CANARY) else PRIMARY
    )


def with_canary(
    name: str, alias: Alias, request: GenerationRequest, chain: tuple[ChainEntry, ...]
) -> tuple[ChainEntry, ...]:
    """``chain`` with the canary in front when the request falls into the canary's share."""
    spec = request.model
    if spec.provider is not None or spec.version is not None:
        return chain
    if not takes(alias.canary, request.request_id, name, CANARY):
        return chain
    assert alias.canary is not None
    return (pinned(alias.canary), *chain)


def shadow_of(request: GenerationRequest, config: RoutingConfig) -> ChainEntry | None:
    """The shadow's pinned model when ``request`` is mirrored, else None.

    Only a generation's first attempt is mirrored (a shadow is never re-generated, so the
    re-generations of its primary have no shadow); a replay is a new generation and is.
    """
    name = versioned_alias(request, config)
    if name is None or attempt_in_generation(request.attempt) != 1:
        return None
    split = config.aliases[name].shadow
    return (
        pinned(split)
        if split is not None and takes(split, request.request_id, name, SHADOW)
        else None
    )


def pinned(split: VersionSplit) -> ChainEntry:
    """The split's model as a plain chain entry (without its share)."""
    return ChainEntry.model_validate(split.model_dump(exclude={"share"}))
