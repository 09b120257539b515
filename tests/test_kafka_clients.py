"""Every Kafka client of the project gets the security settings: an ``ast`` walk that proves it.

A client built with ``bootstrap_servers=...`` alone connects in PLAINTEXT, and on a secured
cluster (SASL_SSL) it fails, or hangs retrying, in whatever corner of the line built it. So
every construction of an aiokafka client (``AIOKafkaConsumer``, ``AIOKafkaProducer``,
``AIOKafkaAdminClient``, ``AIOKafkaClient``) in ``streams/``, ``agents/`` and ``assetline/``
must unpack ``**client_kwargs(...)`` (``streams/kafka_security.py``) and pass no
``bootstrap_servers``/``security_protocol``/``ssl_context``/``sasl_*`` of its own; the
Faust app is built with ``broker_credentials=faust_credentials(...)``; and no project code
hands ``settings.kafka_bootstrap`` (a bare string, meaning PLAINTEXT) to a Kafka helper.

A call is found however the class is named (``AIOKafkaConsumer(...)``,
``aiokafka.AIOKafkaConsumer(...)``, an alias from ``import ... as``). The checker is tested on
small sources below, so a rule that stopped matching would fail too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streams", "agents", "assetline")
CLIENT_CLASSES = frozenset(
    {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient", "AIOKafkaClient"}
)
OWN_KEYWORDS = frozenset(
    {
        "bootstrap_servers",
        "security_protocol",
        "ssl_context",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_oauth_token_provider",
    }
)
#: (file, function) allowed to build a client from other keyword arguments, and why.
EXEMPT = {
    # The bulk changelog reader takes the arguments of streams.bulk_restore.consumer_config,
    # built from the Faust app's own configuration: its broker_credentials are
    # faust_credentials(settings) (streams/app.py, checked below).
    ("streams/bulk_restore.py", "bulk_load"),
}


def _client_aliases(tree: ast.Module) -> set[str]:
    """Names the module binds to an aiokafka client class (``import X as Y`` included)."""
    names = set(CLIENT_CLASSES)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in CLIENT_CLASSES and alias.asname:
                    names.add(alias.asname)
    return names


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _unpacks_client_kwargs(call: ast.Call) -> bool:
    return any(
        kw.arg is None
        and isinstance(kw.value, ast.Call)
        and _called_name(kw.value) == "client_kwargs"
        for kw in call.keywords
    )


def violations(source: str, filename: str) -> list[str]:
    """``file:line: why`` for each aiokafka client built without ``**client_kwargs(...)``."""
    tree = ast.parse(source, filename)
    aliases = _client_aliases(tree)
    found: list[str] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, child.name)
                continue
            if isinstance(child, ast.Call) and _called_name(child) in aliases:
                exempt = (filename, function) in EXEMPT
                own = sorted(kw.arg for kw in child.keywords if kw.arg in OWN_KEYWORDS)
                if own:
                    found.append(
                        f"{filename}:{child.lineno}: {_called_name(child)} sets {', '.join(own)} "
                        "itself; take them from **client_kwargs(settings)"
                    )
                elif not exempt and not _unpacks_client_kwargs(child):
                    found.append(
                        f"{filename}:{child.lineno}: {_called_name(child)} without "
                        "**client_kwargs(...) (streams/kafka_security.py)"
                    )
            visit(child, function)

    visit(tree, None)
    return found


def bare_bootstrap_arguments(source: str, filename: str) -> list[str]:
    """``file:line`` of each call handed ``<x>.kafka_bootstrap`` itself as an argument.

    The Kafka helpers (``read_to_end``, ``ensure_topics``, ``open_producer``, ...) take the
    settings or a bare bootstrap string; a string means PLAINTEXT, so project code that hands
    them ``settings.kafka_bootstrap`` would drop TLS and SASL without a sound.
    """
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        values = [*node.args, *(kw.value for kw in node.keywords)]
        if any(isinstance(v, ast.Attribute) and v.attr == "kafka_bootstrap" for v in values):
            found.append(
                f"{filename}:{node.lineno}: .kafka_bootstrap handed to a call; hand it the "
                "settings, so TLS/SASL go along"
            )
    return found


def _project_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_every_aiokafka_client_takes_client_kwargs() -> None:
    found: list[str] = []
    checked = 0
    for path in _project_files():
        source = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT).as_posix()
        found += violations(source, rel)
        checked += sum(source.count(f"{name}(") for name in CLIENT_CLASSES)
    assert not found, "\n".join(found)
    # the walk saw the project's clients (a walker that matched nothing would pass vacuously)
    assert checked >= 15


def test_no_project_code_hands_a_bare_bootstrap_to_a_kafka_helper() -> None:
    found: list[str] = []
    for path in _project_files():
        rel = path.relative_to(ROOT).as_posix()
        found += bare_bootstrap_arguments(path.read_text(encoding="utf-8"), rel)
    assert not found, "\n".join(found)


def test_checker_finds_a_bare_bootstrap_argument() -> None:
    source = (
        "await read_to_end(settings.kafka_bootstrap, topic)\n"
        "p = open_producer(kafka=self.settings.kafka_bootstrap)\n"
        "log.info(f'at {settings.kafka_bootstrap}')\n"
        "hosts = settings.kafka_bootstrap.split(',')\n"
    )
    found = bare_bootstrap_arguments(source, "x.py")
    assert sorted(f.split(":")[1] for f in found) == ["1", "2"]


def test_faust_app_gets_broker_credentials() -> None:
    tree = ast.parse((ROOT / "streams" / "app.py").read_text(encoding="utf-8"))
    credentials = [
        kw
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _called_name(node) == "LineApp"
        for kw in node.keywords
        if kw.arg == "broker_credentials"
    ]
    assert len(credentials) == 1
    value = credentials[0].value
    assert isinstance(value, ast.Call)
    assert _called_name(value) == "faust_credentials"


def test_exempt_functions_still_exist() -> None:
    for filename, function in EXEMPT:
        tree = ast.parse((ROOT / filename).read_text(encoding="utf-8"))
        names = {
            n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        assert function in names, f"{filename} no longer has {function}: drop it from EXEMPT"


# --------------------------------------------------------------------------- the checker itself


def test_checker_finds_a_plain_client() -> None:
    source = (
        "from aiokafka import AIOKafkaConsumer\n"
        "def f(s):\n"
        "    return AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap)\n"
    )
    (found,) = violations(source, "x.py")
    assert found.startswith("x.py:3: AIOKafkaConsumer sets bootstrap_servers")


def test_checker_finds_a_client_without_any_servers_and_via_module_or_alias() -> None:
    source = (
        "import aiokafka\n"
        "from aiokafka.admin import AIOKafkaAdminClient as Admin\n"
        "p = aiokafka.AIOKafkaProducer(acks='all')\n"
        "a = Admin(**other(s))\n"
    )
    found = violations(source, "x.py")
    assert [f.split(":")[1] for f in found] == ["3", "4"]


def test_checker_finds_own_security_beside_client_kwargs() -> None:
    source = "c = AIOKafkaConsumer(**client_kwargs(s), security_protocol='PLAINTEXT')\n"
    (found,) = violations(source, "x.py")
    assert "sets security_protocol" in found


def test_checker_accepts_client_kwargs() -> None:
    source = (
        "from streams.kafka_security import client_kwargs\n"
        "async def f(s):\n"
        "    c = AIOKafkaConsumer(**client_kwargs(s), group_id='g')\n"
        "    p = AIOKafkaProducer(**kafka_security.client_kwargs(s))\n"
    )
    assert violations(source, "x.py") == []
