"""assetline: the face of the line for people and other services.

What a Python producer needs comes from here, so it does not depend on where things live
inside the layers::

    from assetline import GenerationRequest, LineClient, Settings

    async with LineClient(Settings()) as client:
        await client.submit(requests)

Importing this package loads the SDK and the contracts only, not the Faust runtime of the worker.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from assetline.client import LineClient, SubmitError, await_completions
from schemas.errors import AssetlineError
from schemas.records import (
    AssetCompleted,
    AssetKind,
    CompletionStatus,
    Constraints,
    GenerationRequest,
    ModelSpec,
    Priority,
)
from streams.settings import Settings

try:
    __version__ = version("assetline")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AssetCompleted",
    "AssetKind",
    "AssetlineError",
    "CompletionStatus",
    "Constraints",
    "GenerationRequest",
    "LineClient",
    "ModelSpec",
    "Priority",
    "Settings",
    "SubmitError",
    "__version__",
    "await_completions",
]
