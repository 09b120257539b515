"""The layers stay one-way: a test that reads every import of the four packages with ``ast``.

Why a test and not a convention: the cycles issue 13 removed were hidden in function-level
imports, which neither a linter nor a reader of the module header sees. So the walker reads
*every* import statement of every ``.py`` file of ``schemas/``, ``streams/``, ``agents/`` and
``assetline/``: module-level ones, the ones inside functions and methods, and the ones under
``if TYPE_CHECKING:`` (a type-only import is still a dependency of the design). Relative imports
are resolved against the importing module's package. ``bench/`` and ``examples/`` may import
anything and are not walked.

Rules checked:

1. Layers: ``schemas`` <- ``streams`` <- ``agents`` <- ``assetline``. ``schemas`` imports nothing
   of the project; ``streams`` imports ``schemas`` (and itself); ``agents`` imports ``streams``,
   ``schemas`` (and itself); ``assetline`` may import all four. No layer imports ``tests``,
   ``bench`` or ``examples``.
2. Stages: ``agents/generate``, ``validate``, ``review``, ``deliver`` and ``notify`` do not import
   each other (what they share lives in ``agents/inference``, ``policy``, ``egress``, ``media``,
   ``tenants.py``); only ``agents/stages.py``, the stage registry, imports a stage's ``agent``
   module (a stage's own package may of course import its own ``agent``).
3. No import cycle between modules. The graph has one node per module (``pkg/__init__.py`` is the
   node ``pkg``) and one edge per import statement, to the *deepest module named*:
   ``import a.b.c`` and ``from a.b import c`` (``c`` a submodule) are edges to ``a.b.c`` only;
   ``from a.b import name`` (``name`` not a submodule) is an edge to ``a.b``. Parent packages that
   Python initialises on the way are *not* edges. Consequence, deliberately: a package
   ``__init__`` that re-exports its own submodules (``pkg -> pkg.sub``) is not a cycle, because the
   submodule names ``pkg.sub2`` or ``pkg.sub`` directly, never the package; it becomes a cycle (and
   is reported) as soon as the submodule imports a name *from the package itself*
   (``from pkg import X`` / ``from . import X`` with ``X`` defined or re-exported by
   ``__init__``), which is exactly the case that breaks at import time. Every strongly connected
   component of more than one module is reported with the edges that close it.

Each failure names ``file:line -> imported module``. The checker itself is tested on small
synthetic trees below, so a rule that silently stopped matching would fail too.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Walked packages, lowest layer first -> the project packages each may import besides itself.
LAYERS: Mapping[str, frozenset[str]] = {
    "schemas": frozenset(),
    "streams": frozenset({"schemas"}),
    "agents": frozenset({"schemas", "streams"}),
    "assetline": frozenset({"schemas", "streams", "agents"}),
}
#: Top-level names of the repository that no layer may import (nor is allowed to by ``LAYERS``).
PROJECT_ROOTS = frozenset(LAYERS) | {"tests", "bench", "examples"}
STAGES = ("generate", "validate", "review", "deliver", "notify")
STAGE_REGISTRY = "agents.stages"


@dataclass(frozen=True)
class Import:
    """One imported module of one import statement."""

    importer: str  # dotted module name of the importing file
    path: Path  # the importing file, relative to the scanned root
    line: int
    module: str  # resolved absolute dotted name, the deepest module named

    def where(self) -> str:
        return f"{self.path.as_posix()}:{self.line} -> {self.module}"


def module_name(path: Path) -> tuple[str, bool]:
    """``a/b/c.py`` -> ``("a.b.c", False)``; ``a/b/__init__.py`` -> ``("a.b", True)``."""
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _deepest_known(name: str, modules: frozenset[str]) -> str:
    """The longest prefix of ``name`` that is a scanned module (``name`` itself if none is, or if
    it is a folder without ``__init__.py`` that holds scanned modules)."""
    if any(module.startswith(f"{name}.") for module in modules):
        return name
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return name


def _resolve_from(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module of ``from <level dots><module> import ...`` in ``importer``."""
    if node.level == 0:
        return node.module or ""
    package = importer if is_package else importer.rpartition(".")[0]
    parts = package.split(".")
    if node.level - 1 > 0:
        parts = parts[: len(parts) - (node.level - 1)]
    base = ".".join(parts)
    if node.module:
        return f"{base}.{node.module}" if base else node.module
    return base


def scan(root: Path, packages: Iterable[str]) -> tuple[list[Import], frozenset[str]]:
    """Every import of every ``.py`` file under ``root/<package>``, and the set of modules seen."""
    files: dict[str, tuple[Path, bool]] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            name, is_package = module_name(relative)
            files[name] = (relative, is_package)
    modules = frozenset(files)
    imports: list[Import] = []
    for importer, (relative, is_package) in sorted(files.items()):
        tree = ast.parse((root / relative).read_text(encoding="utf-8"), filename=str(relative))
        for node in ast.walk(tree):  # every depth: functions, methods, `if TYPE_CHECKING:`
            if isinstance(node, ast.Import):
                for alias in node.names:
                    module = _deepest_known(alias.name, modules)
                    imports.append(Import(importer, relative, node.lineno, module))
            elif isinstance(node, ast.ImportFrom):
                base = _resolve_from(importer, is_package, node)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    module = submodule if submodule in modules else _deepest_known(base, modules)
                    imports.append(Import(importer, relative, node.lineno, module))
    # One entry per (file, line, module): `from x import a, b` is one dependency, not two.
    unique = sorted(set(imports), key=lambda i: (i.path.as_posix(), i.line, i.module))
    return unique, modules


@dataclass(frozen=True)
class Problem:
    """A rule broken by one import."""

    rule: str
    imp: Import

    def __str__(self) -> str:
        return f"{self.rule}: {self.imp.where()}"


def _top(module: str) -> str:
    return module.partition(".")[0]


def layer_violations(imports: Iterable[Import]) -> list[Problem]:
    """Imports of a project package the importer's layer may not use."""
    found = []
    for imp in imports:
        layer = _top(imp.importer)
        target = _top(imp.module)
        if target == layer or target not in PROJECT_ROOTS:
            continue
        if target not in LAYERS.get(layer, frozenset()):
            found.append(Problem(f"{layer} may not import {target}", imp))
    return found


def _stage_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == "agents" and parts[1] in STAGES:
        return parts[1]
    return None


def stage_violations(imports: Iterable[Import]) -> list[Problem]:
    """A stage importing another stage; anything but the registry importing a stage's agent."""
    found = []
    for imp in imports:
        own = _stage_of(imp.importer)
        target = _stage_of(imp.module)
        if target is None:
            continue
        if own is not None and own != target:
            found.append(Problem(f"stage {own} may not import stage {target}", imp))
            continue
        is_agent = imp.module == f"agents.{target}.agent"
        if is_agent and own != target and imp.importer != STAGE_REGISTRY:
            found.append(Problem(f"only {STAGE_REGISTRY} may import a stage's agent module", imp))
    return found


def _strongly_connected(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on deep graphs)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, set())))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def cycles(imports: Sequence[Import], modules: frozenset[str]) -> list[str]:
    """Each import cycle (strongly connected component > 1 module) with the edges inside it."""
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for imp in imports:
        if imp.module in modules and imp.module != imp.importer:
            graph[imp.importer].add(imp.module)
    found = []
    for component in _strongly_connected(graph):
        if len(component) < 2:
            continue
        members = set(component)
        edges = [
            f"  {imp.where()}"
            for imp in imports
            if imp.importer in members and imp.module in members and imp.module != imp.importer
        ]
        found.append(f"cycle between {', '.join(component)}:\n" + "\n".join(edges))
    return found


def _report(problems: Iterable[object]) -> str:
    listed = [str(problem) for problem in problems]
    return f"{len(listed)} problem(s):\n" + "\n".join(listed)


# --- the real tree -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project() -> tuple[list[Import], frozenset[str]]:
    return scan(ROOT, LAYERS)


def test_the_walker_sees_the_whole_tree(project: tuple[list[Import], frozenset[str]]) -> None:
    """A walker that found nothing would pass every rule; pin that it reads what is there."""
    imports, modules = project
    assert {"schemas.records", "streams.app", "agents.stages", "assetline.client"} <= modules
    registry_imports = {i.module for i in imports if i.importer == STAGE_REGISTRY}
    assert {f"agents.{stage}.agent" for stage in STAGES} <= registry_imports


def test_each_layer_imports_only_the_layers_below(
    project: tuple[list[Import], frozenset[str]],
) -> None:
    problems = layer_violations(project[0])
    assert not problems, _report(problems)


def test_stages_do_not_import_each_other(project: tuple[list[Import], frozenset[str]]) -> None:
    problems = stage_violations(project[0])
    assert not problems, _report(problems)


def test_no_import_cycles(project: tuple[list[Import], frozenset[str]]) -> None:
    problems = cycles(*project)
    assert not problems, _report(problems)


# --- the checker, on synthetic trees -----------------------------------------------------------


def _tree(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _scan(root: Path) -> tuple[list[Import], frozenset[str]]:
    return scan(root, [p.name for p in sorted(root.iterdir()) if p.is_dir()])


def test_checker_resolves_relative_imports(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "agents/__init__.py": "",
            "agents/generate/__init__.py": "from . import agent\n",
            "agents/generate/agent.py": "from ..inference import router\nfrom .. import tenants\n",
            "agents/generate/sub/deep.py": "from ...policy.profile import Profile\n",
            "agents/policy/profile.py": "from agents.policy import rules\n",
            "agents/policy/rules.py": "",
            "agents/inference/__init__.py": "",
            "agents/inference/router.py": "",
            "agents/tenants.py": "",
        },
    )
    imports, _ = _scan(root)
    assert {(i.importer, i.module) for i in imports} == {
        ("agents.generate", "agents.generate.agent"),
        ("agents.generate.agent", "agents.inference.router"),
        ("agents.generate.agent", "agents.tenants"),
        ("agents.generate.sub.deep", "agents.policy.profile"),
        ("agents.policy.profile", "agents.policy.rules"),  # a folder without __init__.py
    }


def test_checker_finds_a_higher_layer_in_functions_and_type_checking(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "schemas/records.py": "def f():\n    import streams.app\n",
            "streams/app.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from agents.stages import INSTALLERS\n"
                "import schemas.records\n"
            ),
            "agents/stages.py": "class C:\n    def m(self):\n        from assetline import x\n",
            "assetline/cli.py": "import agents.stages, streams.app, schemas.records, click\n",
        },
    )
    problems = [str(p) for p in layer_violations(_scan(root)[0])]
    assert problems == [
        "agents may not import assetline: agents/stages.py:3 -> assetline",
        "schemas may not import streams: schemas/records.py:2 -> streams.app",
        "streams may not import agents: streams/app.py:3 -> agents.stages",
    ]


def test_checker_forbids_tests_bench_and_examples(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"assetline/demo.py": "from bench import run\nimport tests.support\n"})
    assert [str(p) for p in layer_violations(_scan(root)[0])] == [
        "assetline may not import bench: assetline/demo.py:1 -> bench",
        "assetline may not import tests: assetline/demo.py:2 -> tests.support",
    ]


def test_checker_finds_stages_importing_each_other_and_agent_modules(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "agents/generate/__init__.py": "",
            "agents/generate/agent.py": "from agents.generate import one\n",
            "agents/generate/one.py": "def f():\n    from agents.deliver.layout import x\n",
            "agents/deliver/__init__.py": "",
            "agents/deliver/agent.py": "",
            "agents/deliver/layout.py": "",
            "agents/stages.py": "from agents.generate.agent import install\n",
            "agents/tenants.py": "",
            "assetline/worker.py": "from agents.deliver import agent\n",
        },
    )
    problems = [str(p) for p in stage_violations(_scan(root)[0])]
    assert problems == [
        "stage generate may not import stage deliver: agents/generate/one.py:2 -> "
        "agents.deliver.layout",
        "only agents.stages may import a stage's agent module: assetline/worker.py:1 -> "
        "agents.deliver.agent",
    ]


def test_checker_finds_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "streams/__init__.py": "",
            "streams/app.py": "def install():\n    from streams import stage\n",
            "streams/stage.py": "from streams.app import Line\n",
            "streams/other.py": "import streams.app\n",
        },
    )
    assert cycles(*_scan(root)) == [
        "cycle between streams.app, streams.stage:\n"
        "  streams/app.py:2 -> streams.stage\n"
        "  streams/stage.py:1 -> streams.app"
    ]


def test_checker_allows_an_init_re_exporting_its_submodules(tmp_path: Path) -> None:
    """The documented rule: ``pkg -> pkg.sub`` alone is no cycle; ``pkg.sub -> pkg`` closes one."""
    files = {
        "agents/notify/__init__.py": (
            "from agents.notify.sender import deliver\nfrom . import due\n"
        ),
        "agents/notify/sender.py": "from agents.notify.due import next_due\n",
        "agents/notify/due.py": "import agents.notify.signing\n",
        "agents/notify/signing.py": "",
    }
    assert cycles(*_scan(_tree(tmp_path / "ok", files))) == []

    files["agents/notify/signing.py"] = "from agents.notify import deliver\n"
    problems = cycles(*_scan(_tree(tmp_path / "bad", files)))
    assert len(problems) == 1
    assert problems[0].startswith(
        "cycle between agents.notify, agents.notify.due, agents.notify.sender, "
        "agents.notify.signing:"
    )
    assert "agents/notify/signing.py:1 -> agents.notify" in problems[0]


def test_checker_handles_deep_chains(tmp_path: Path) -> None:
    """Tarjan is iterative: a chain longer than the recursion limit is walked, its loop found."""
    length = sys.getrecursionlimit() + 50
    files = {f"streams/m{i}.py": f"import streams.m{i + 1}\n" for i in range(length)}
    files[f"streams/m{length}.py"] = "import streams.m0\n"
    problems = cycles(*_scan(_tree(tmp_path, files)))
    assert len(problems) == 1
    assert f"streams/m{length}.py:1 -> streams.m0" in problems[0]
