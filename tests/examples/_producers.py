"""Build and run the example producers in examples/producers/ (Java and Node) from tests.

``mvn`` and ``node``/``npm`` missing is a test failure, not a skip: CI has them, and a silently
skipped cross-language check would let the wire format drift unnoticed.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SCHEMAS = ROOT / "schemas"
JAVA_DIR = ROOT / "examples" / "producers" / "java"
NODE_DIR = ROOT / "examples" / "producers" / "node"
JAR = JAVA_DIR / "target" / "assetline-producer.jar"

BUILD_TIMEOUT_S = 600  # a cold Maven build downloads ~60 MB of plugins and jars


def require_tool(name: str) -> str:
    """Absolute path of ``name`` on PATH, or fail the test saying what is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"'{name}' is not on PATH; the examples/producers tests need it", pytrace=False)
    return path


def run(command: Sequence[str], *, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``command``; fail with its output if it exits non-zero."""
    done = subprocess.run(
        list(command), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {done.returncode}\n"
            f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}",
            pytrace=False,
        )
    return done


def _files(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*") if p.is_file())


@functools.cache
def java_command() -> tuple[str, ...]:
    """``java -jar <jar>``, building the jar first unless it is newer than every source."""
    java = require_tool("java")
    sources = [JAVA_DIR / "pom.xml", *_files(JAVA_DIR / "src")]
    newest = max(p.stat().st_mtime for p in sources)
    if not JAR.exists() or JAR.stat().st_mtime <= newest:
        run([require_tool("mvn"), "-q", "-B", "package"], cwd=JAVA_DIR, timeout=BUILD_TIMEOUT_S)
        assert JAR.exists(), f"mvn package did not produce {JAR}"
        JAR.touch()  # the jar plugin keeps an unchanged jar's old mtime; mark it as built now
    return (java, "-jar", str(JAR))


@functools.cache
def node_command() -> tuple[str, ...]:
    """``node producer.js``, running ``npm ci`` first unless node_modules matches the lock."""
    node = require_tool("node")
    lock = NODE_DIR / "package-lock.json"
    # npm writes node_modules/.package-lock.json on every install: newer than the lock file
    # means the installed tree is the locked one.
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime <= lock.stat().st_mtime:
        run(
            [require_tool("npm"), "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            timeout=BUILD_TIMEOUT_S,
        )
    return (node, str(NODE_DIR / "producer.js"))
