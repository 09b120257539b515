"""constraints.txt pins the whole runtime, and every way of installing assetline uses it.

Faust's internals are patched (streams/safe_consumer.py) and were only ever tested with the
versions in constraints.txt; an unpinned transitive dependency (mode-streaming comes in through
faust-streaming with no upper bound) would let a fresh install drift away from them.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in (ROOT / "constraints.txt").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        assert match, f"constraints.txt: not an exact 'name==version' pin: {line!r}"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"constraints.txt pins {name} twice"
        pins[name] = match.group(2)
    return pins


def _project_requirements(*, extras: tuple[str, ...] = ()) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


def _applies(req: Requirement, extras: frozenset[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": extra}) for extra in ("", *sorted(extras)))


def _closure(roots: list[Requirement]) -> set[str]:
    """Every distribution the roots pull in on this interpreter, as installed here."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(r.name, frozenset(r.extras)) for r in roots if _applies(r, frozenset())]
    while todo:
        name, extras = todo.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            if _applies(req, extras):
                todo.append((req.name, frozenset(req.extras)))
    return {name for name, _ in seen}


def test_every_line_is_an_exact_pin() -> None:
    pins = _pins()
    assert canonicalize_name("assetline") not in pins, "the project itself is not pinned"
    assert len(pins) > 50


def test_faust_and_its_unbounded_dependencies_are_pinned() -> None:
    pins = _pins()
    for name in ("faust-streaming", "mode-streaming", "aiokafka", "croniter", "venusian"):
        assert name in pins, f"{name} is not pinned"
    faust_deps = {
        canonicalize_name(Requirement(r).name)
        for r in metadata.requires("faust-streaming") or []
        if _applies(Requirement(r), frozenset())
    }
    assert faust_deps <= set(pins), f"faust's own dependencies not pinned: {faust_deps - set(pins)}"


def test_the_runtime_and_dev_sets_are_pinned_transitively() -> None:
    needed = _closure(_project_requirements(extras=("dev", "otel")))
    missing = needed - set(_pins())
    assert not missing, f"run 'make constraints': not pinned in constraints.txt: {sorted(missing)}"


def test_pins_satisfy_pyproject_bounds() -> None:
    """A pin outside a bound in pyproject.toml would make every install fail to resolve."""
    pins = _pins()
    for req in _project_requirements(extras=("dev", "c2pa", "otel")):
        name = canonicalize_name(req.name)
        if name in pins:
            assert req.specifier.contains(pins[name], prereleases=True), (
                f"constraints.txt pins {name}=={pins[name]}, pyproject.toml wants {req.specifier}"
            )


def test_makefile_installs_with_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q -c constraints.txt -e '.[dev,otel]'" in makefile
    stamp_rule = next(line for line in makefile.splitlines() if line.startswith("$(STAMP):"))
    assert "constraints.txt" in stamp_rule, "a new pin must re-run the install"
    assert re.search(r"^constraints:", makefile, re.MULTILINE), "make constraints regenerates it"
    assert "make test" in (ROOT / ".ci" / "run").read_text(), "CI installs through make"


def test_dockerfile_installs_with_the_constraints() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    copies = [line for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert any("constraints.txt" in line for line in copies)
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs
    assert all("-c constraints.txt" in line for line in installs)
