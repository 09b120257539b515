"""A real Confluent-compatible schema registry for tests: Apicurio Registry, without Docker.

Apicurio publishes its server on Maven Central as ``io.apicurio:apicurio-registry-app`` with an
``all`` classifier (``tar.gz``): a Quarkus runner jar plus its ``lib/``. Like
:mod:`assetline.dev.broker._local` does for Kafka, :func:`fetch` resolves it once with ``mvn`` into
``<home>/.cache/apicurio/<version>/app`` (a marker written last; an interrupted fetch is redone)
and :class:`ApicurioRegistry` runs it with the local ``java`` on a free loopback port, with its
default in-memory H2 storage, until stopped. Its Confluent-compatible API is at
``/apis/ccompat/v7``.

Version: 3.0.9 runs on Java 17; 3.3.3 does not (its classes are built for Java 21, class file
version 65). 3.1/3.2 were not tried.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from assetline.dev.broker import assetline_home, file_lock, free_port

log = logging.getLogger(__name__)

DEFAULT_VERSION = "3.0.9"
CCOMPAT_PATH = "/apis/ccompat/v7"
# 2.8 on purpose: its ``get`` with ``-Dtransitive=false`` fetches just the archive and takes
# ``-Ddest``. ``copy``/3.x ``get`` also read the parent pom (io.apicurio:apicurio-registry), which
# is not needed to run the server and was not resolvable from the Central mirror used here.
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:2.8"
_LOG_TAIL_LINES = 40


class ApicurioError(Exception):
    """Apicurio Registry could not be fetched, started or reached."""


def default_cache() -> Path:
    """``<home>/.cache/apicurio`` (git-ignored), shared by every test session."""
    return assetline_home() / ".cache" / "apicurio"


def _which(tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise ApicurioError(f"`{tool}` not found on PATH; {hint}")
    return found


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        return str(Path(java_home) / "bin" / "java")
    return _which("java", "Apicurio Registry needs a Java 17+ runtime")


def _runner_jar(app: Path) -> Path | None:
    """The Quarkus entry point: ``*-runner.jar`` (legacy jar, 3.0.x) or ``quarkus-run.jar``."""
    found = sorted(app.glob("*-runner.jar")) or sorted(app.glob("quarkus-run.jar"))
    return found[0] if found else None


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    # Java stack frames drown the cause; keep the messages.
    kept = [line for line in text.splitlines() if not line.lstrip().startswith("at ")]
    return "\n".join(kept[-lines:])


def _is_fetched(version_dir: Path, version: str) -> bool:
    try:
        marker = json.loads((version_dir / "fetched.json").read_text())
    except (OSError, ValueError):
        return False
    app = version_dir / "app"
    return (
        isinstance(marker, dict)
        and marker.get("version") == version
        and (app / str(marker.get("runner", ""))).is_file()
        and (app / "lib").is_dir()
    )


def fetch(version: str = DEFAULT_VERSION, cache: Path | None = None) -> Path:
    """Resolve and unpack Apicurio Registry ``version`` once; return its runner jar."""
    version_dir = (cache or default_cache()).expanduser().resolve() / version
    app = version_dir / "app"
    if _is_fetched(version_dir, version):
        runner = _runner_jar(app)
        if runner is not None:
            return runner
    mvn = _which("mvn", "it is needed once to fetch Apicurio Registry from Maven Central")
    with file_lock(version_dir / ".fetch.lock"):
        if _is_fetched(version_dir, version):  # fetched by another session meanwhile
            runner = _runner_jar(app)
            if runner is not None:
                return runner
        (version_dir / "fetched.json").unlink(missing_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="fetch-", dir=version_dir))
        try:
            (staging / "dist").mkdir()
            cmd = [
                mvn,
                "-q",
                "-B",
                f"{_DEPENDENCY_PLUGIN}:get",
                f"-Dartifact=io.apicurio:apicurio-registry-app:{version}:tar.gz:all",
                "-Dtransitive=false",
                f"-Ddest={staging / 'dist'}/",
            ]
            started = time.monotonic()
            try:
                result = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    timeout=900,
                    check=False,
                    stdin=subprocess.DEVNULL,
                    cwd=staging,  # no pom.xml here: mvn runs the goal project-less
                )
            except subprocess.TimeoutExpired as exc:
                raise ApicurioError(f"mvn did not finish within {exc.timeout}s") from exc
            archives = sorted((staging / "dist").glob("*.tar.gz"))
            if result.returncode != 0 or len(archives) != 1:
                output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
                raise ApicurioError(
                    f"mvn failed to fetch Apicurio Registry {version} "
                    f"(exit {result.returncode}):\n{output}"
                )
            unpacked = staging / "app"
            with tarfile.open(archives[0]) as archive:
                archive.extractall(unpacked, filter="data")
            runner = _runner_jar(unpacked)
            if runner is None:
                raise ApicurioError(f"no runner jar in {archives[0].name}")
            shutil.rmtree(app, ignore_errors=True)
            unpacked.rename(app)
            marker = {"version": version, "runner": runner.name}
            (version_dir / "fetched.json").write_text(json.dumps(marker, indent=2) + "\n")
            log.info("fetched Apicurio Registry %s in %.1fs", version, time.monotonic() - started)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    runner = _runner_jar(app)
    assert runner is not None
    return runner


def _answers(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback only
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class ApicurioRegistry:
    """One Apicurio Registry JVM on loopback with in-memory storage; a context manager.

    ``url`` is the Confluent-compatible base URL, for :class:`streams.registry.RegistryClient`
    and confluent-kafka's ``SchemaRegistryClient`` alike. Everything it writes (log, JVM crash
    files) goes under ``root``, which :meth:`stop` removes unless ``keep_root``.
    """

    def __init__(
        self,
        *,
        version: str = DEFAULT_VERSION,
        cache: Path | None = None,
        root: Path | None = None,
        heap: str = "384m",
        host: str = "127.0.0.1",
        port: int | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        """``properties`` are extra Quarkus/Apicurio settings, passed as ``-Dkey=value``."""
        self.version = version
        self.cache = cache
        self.heap = heap
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.properties = dict(properties or {})
        self._own_root = root is None
        # Created by start(), so an instance that is never started leaves nothing behind.
        self.root = root or Path(tempfile.gettempdir()) / f"apicurio-{uuid.uuid4().hex[:12]}"
        self.log_path = self.root / "apicurio.log"
        self._process: subprocess.Popen[bytes] | None = None
        #: Seconds spent in :func:`fetch` (near zero once cached) and starting the JVM.
        self.fetch_seconds = 0.0
        self.start_seconds = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The Confluent-compatible API (what a Confluent client's ``url`` is set to)."""
        return self.base_url + CCOMPAT_PATH

    def log_tail(self) -> str:
        return _tail(self.log_path)

    def start(self, timeout: float = 120.0) -> str:
        """Fetch if needed, start the JVM, wait until the ccompat API answers; return ``url``.

        On any failure the JVM (if any) is stopped and ``root`` removed before raising.
        """
        if self._process is not None:
            raise ApicurioError("already started")
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> str:
        java = _java()
        started = time.monotonic()
        runner = fetch(self.version, self.cache)
        self.fetch_seconds = time.monotonic() - started
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [
            java,
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # C1 only: boots faster on 2 cores, plenty for tests
            "-Djava.awt.headless=true",
            f"-XX:ErrorFile={self.root / 'hs_err_pid%p.log'}",
            f"-Dquarkus.http.host={self.host}",
            f"-Dquarkus.http.port={self.port}",
            # In-memory H2 (Apicurio 3's default storage), spelled out so it stays so; a
            # small pool instead of the default 20 idle connections.
            "-Dapicurio.storage.kind=sql",
            "-Dapicurio.storage.sql.kind=h2",
            "-Dapicurio.datasource.url=jdbc:h2:mem:registry",
            "-Dapicurio.datasource.jdbc.initial-size=2",
            "-Dapicurio.datasource.jdbc.min-size=2",
            f"-Dapicurio.storage.snapshot.location={self.root}",
            "-Dquarkus.http.access-log.enabled=false",
            *(f"-D{key}={value}" for key, value in self.properties.items()),
            "-jar",
            str(runner),
        ]
        started = time.monotonic()
        with self.log_path.open("wb") as log_file:
            self._process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,  # its own process group: Ctrl-C is ours to forward
            )
        probe = f"{self.url}/subjects"
        deadline = started + timeout
        while not _answers(probe, timeout=2.0):
            if self._process.poll() is not None:
                raise ApicurioError(
                    f"Apicurio Registry {self.version} exited ({self._process.returncode}) "
                    f"during start; last lines of its log:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                tail = self.log_tail()
                raise ApicurioError(
                    f"Apicurio Registry {self.version} did not answer {probe} within "
                    f"{timeout}s; last lines of its log:\n{tail}"
                )
            time.sleep(0.25)
        self.start_seconds = time.monotonic() - started
        log.info(
            "Apicurio Registry %s (pid %d) answers at %s after %.1fs",
            self.version,
            self._process.pid,
            self.url,
            self.start_seconds,
        )
        return self.url

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (Quarkus shuts down cleanly), SIGKILL after ``timeout``; remove ``root``."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ApicurioRegistry:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
