"""The SDK's public face: ``from assetline import ...`` is a promise to other services.

``__all__`` is pinned so a name leaves (or joins) the face only on purpose, and importing the face
must stay light: a producer service should not load the Faust runtime the worker runs on.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import assetline
from assetline import client
from schemas import errors, records
from streams import settings

PUBLIC = [
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


def test_all_is_pinned() -> None:
    assert sorted(assetline.__all__) == PUBLIC
    assert len(set(assetline.__all__)) == len(assetline.__all__)


def test_every_public_name_is_importable_and_is_the_real_thing() -> None:
    for name in PUBLIC:
        exec(f"from assetline import {name}", {})  # the form the README shows
    assert assetline.LineClient is client.LineClient
    assert assetline.SubmitError is client.SubmitError
    assert assetline.await_completions is client.await_completions
    assert assetline.Settings is settings.Settings
    assert assetline.AssetlineError is errors.AssetlineError
    for name in ("GenerationRequest", "ModelSpec", "Constraints", "AssetKind", "Priority"):
        assert getattr(assetline, name) is getattr(records, name)
    for name in ("AssetCompleted", "CompletionStatus"):
        assert getattr(assetline, name) is getattr(records, name)


def test_version_is_the_installed_distributions() -> None:
    assert assetline.__version__ == importlib.metadata.version("assetline")


def test_importing_the_face_does_not_load_faust_or_the_stages() -> None:
    """In a fresh interpreter: this process has loaded Faust through other tests already."""
    probe = (
        "import sys, assetline\n"
        "tops = ('faust', 'mode', 'agents')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in tops)\n"
        "print(loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout
