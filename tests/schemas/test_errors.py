"""Every project exception derives from AssetlineError, has a code, and is in the docstring tree.

The tree in :mod:`schemas.errors` is compared with one rendered from the classes that exist, so
adding, moving or re-coding an exception without updating the docstring fails here (the
failure message prints the tree to paste).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import textwrap
from collections.abc import Iterator
from types import ModuleType

import pytest

import schemas.errors
from schemas.errors import AssetlineError

PACKAGES = ("schemas", "streams", "agents", "assetline")
_CODE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")
_TREE_START = "Exception tree (class, code)::\n\n"
_WHERE_START = "Where each is defined (module, classes)::\n\n"


def _modules() -> Iterator[ModuleType]:
    for name in PACKAGES:
        package = importlib.import_module(name)
        yield package
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            if info.name.endswith(".__main__"):  # runs the CLI when imported
                continue
            yield importlib.import_module(info.name)


def _exceptions() -> list[type[BaseException]]:
    """Exception classes defined (not just imported) in the four packages, in source order."""
    found: dict[tuple[str, str], type[BaseException]] = {}
    for module in _modules():
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
            ):
                found[obj.__module__, obj.__qualname__] = obj
    return sorted(found.values(), key=_order)


def _order(cls: type) -> tuple[int, str, int]:
    """Layer (lowest first), module, then line, so siblings keep a stable reading order."""
    layer = PACKAGES.index(cls.__module__.partition(".")[0])
    return layer, cls.__module__, inspect.getsourcelines(cls)[1]


EXCEPTIONS = _exceptions()


def _parent(cls: type[BaseException]) -> type[BaseException] | None:
    """The base the tree hangs ``cls`` under: its first base defined in the project."""
    return next((base for base in cls.__bases__ if base in EXCEPTIONS), None)


def render_tree(classes: list[type[BaseException]]) -> str:
    """The docstring's two blocks: the tree (name indented by inheritance, ``code``), then
    where each class is defined (module, classes), because three columns do not fit in 100."""
    children: dict[type[BaseException] | None, list[type[BaseException]]] = {}
    for cls in classes:
        children.setdefault(_parent(cls), []).append(cls)
    rows: list[tuple[str, str]] = []

    def walk(cls: type[BaseException], lead: str, branch: str) -> None:
        rows.append((lead + branch + cls.__qualname__, str(getattr(cls, "code", "-"))))
        kids = children.get(cls, [])
        below = lead + {"": "", "├── ": "│   ", "└── ": "    "}[branch]
        for i, kid in enumerate(kids):
            walk(kid, below, "└── " if i == len(kids) - 1 else "├── ")

    for root in children.get(None, []):
        walk(root, "", "")
    width = max(len(name) for name, _ in rows) + 2
    tree = "".join(f"    {name:<{width}}{code}\n" for name, code in rows)

    modules: dict[str, list[str]] = {}
    for cls in classes:
        modules.setdefault(cls.__module__, []).append(cls.__qualname__)
    width = max(len(module) for module in modules) + 2
    where = "".join(
        textwrap.fill(
            ", ".join(names),
            100,
            initial_indent=f"    {module:<{width}}",
            subsequent_indent=" " * (4 + width),
            break_on_hyphens=False,
        )
        + "\n"
        for module, names in modules.items()
    )
    return f"{_TREE_START}{tree}\n{_WHERE_START}{where}"


def _documented_tree() -> str:
    """From the tree's heading to the end of the where-block (the next blank line)."""
    doc = schemas.errors.__doc__ or ""
    assert _TREE_START in doc, "schemas/errors.py's docstring has lost its exception tree"
    tree = doc[doc.index(_TREE_START) :]
    head, _, rest = tree.partition(_WHERE_START)
    return head + _WHERE_START + rest.split("\n\n", 1)[0].rstrip("\n") + "\n"


def test_the_four_packages_define_exceptions_at_all() -> None:
    """Guards the walk itself: an import that silently found nothing would pass everything."""
    names = {cls.__qualname__ for cls in EXCEPTIONS}
    assert {"AssetlineError", "ConfigError", "CodecError", "ProviderError", "SubmitError"} <= names
    assert len(EXCEPTIONS) > 40


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_every_exception_derives_from_assetline_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, AssetlineError)


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_every_exception_has_a_dotted_code_of_its_own(cls: type[BaseException]) -> None:
    code = getattr(cls, "code", None)
    assert isinstance(code, str)
    assert _CODE.fullmatch(code), code
    assert "code" in vars(cls), f"{cls.__qualname__} inherits its code; give it its own"


def test_the_docstring_tree_lists_exactly_the_classes_that_exist() -> None:
    expected = render_tree(EXCEPTIONS)
    assert _documented_tree() == expected, (
        "schemas/errors.py's exception tree is out of date; it should read:\n\n" + expected
    )


def test_translating_errors_keep_their_builtin_bases() -> None:
    """``except ValueError`` / ``except RuntimeError`` callers still catch what they caught."""
    from agents.deliver.metadata import MetadataError
    from assetline.replay.republish import ReplayStalledError
    from schemas.avro_schema import SchemaGenerationError
    from streams.config_files import ConfigError
    from streams.topics import TopicMismatchError

    assert issubclass(ConfigError, ValueError)
    assert issubclass(MetadataError, ValueError)
    assert issubclass(SchemaGenerationError, TypeError)
    assert issubclass(TopicMismatchError, RuntimeError)
    from aiokafka.errors import KafkaError

    assert issubclass(ReplayStalledError, KafkaError)
    assert str(ReplayStalledError("stalled")) == "ReplayStalledError: stalled"


def test_an_instance_code_still_shadows_the_class_default() -> None:
    from agents.inference.providers.base import ProviderError

    err = ProviderError("provider.timeout", "slow")
    assert err.code == "provider.timeout"
    assert ProviderError.code == "provider.error"


def test_class_codes_are_the_codes_the_line_already_emits_for_them() -> None:
    """Where an exception already turned into a code, its class code is that very code."""
    from agents.inference.providers.offline import json_document
    from agents.inference.routing.rate_limit import RateLimitTimeout
    from agents.inference.routing.router import RATE_LIMITED_LOCALLY
    from streams.blobs import BlobTooLargeError
    from streams.limits import ASSET_TOO_LARGE

    assert RateLimitTimeout.code == RATE_LIMITED_LOCALLY
    assert json_document._DocumentTooLarge.code == ASSET_TOO_LARGE == BlobTooLargeError.code
    assert json_document._SchemaTooLarge.code == "provider.bad_constraints"
