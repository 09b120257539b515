"""A configuration mistake stops ``assetline worker`` with one line and a non-zero exit.

Run as users run it: ``.venv/bin/assetline worker`` in a subprocess. The configuration is
checked before Kafka is contacted, so the unit tests point at a port where nothing listens
(before the fix they printed "cannot reach Kafka", and with a broker they printed a traceback);
the integration test repeats the first case on the real broker, where the finding was made.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from assetline.dev.broker import free_port

ROOT = Path(__file__).resolve().parents[3]
ASSETLINE = Path(sys.executable).parent / "assetline"
EXAMPLE_ROUTING = ROOT / "examples" / "routing" / "local-openai.yaml"
EXAMPLE_KEYS = {"openai": "sk-test", "anthropic": "ak-test"}


def start_worker(cwd: Path, bootstrap: str | None = None, **settings: str) -> tuple[int, str]:
    """Run the worker with ``ASSETLINE_<NAME>`` settings; its exit code and stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSETLINE_", "KAFKA_"))}
    env["ASSETLINE_KAFKA_BOOTSTRAP"] = bootstrap or f"127.0.0.1:{free_port()}"
    env["ASSETLINE_TOPIC_PREFIX"] = f"cfg-{uuid.uuid4().hex[:8]}"
    env.update({f"ASSETLINE_{name.upper()}": value for name, value in settings.items()})
    done = subprocess.run(
        [str(ASSETLINE), "worker", "--web-port", "0"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done.returncode, done.stderr


def one_error_line(stderr: str) -> str:
    """The single ``Error:`` line, which must be the last thing printed."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, stderr
    assert lines[-1] == errors[0], stderr
    return errors[0]


def test_a_missing_api_key_is_one_line(tmp_path: Path) -> None:
    code, stderr = start_worker(tmp_path, routing_file=str(EXAMPLE_ROUTING), api_keys="{}")
    assert code != 0
    line = one_error_line(stderr)
    assert "provider 'openai' needs API key 'openai'" in line
    assert "ASSETLINE_API_KEYS" in line


def test_a_judge_provider_the_routing_file_lacks_is_one_line_naming_both(tmp_path: Path) -> None:
    """The README's acme profile named ``primary``, which no example routing file has."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "acme.yaml").write_text(
        "judge: {provider: primary, model: gpt-4o-mini, rubric: Friendly., kinds: [TEXT]}\n"
    )
    code, stderr = start_worker(
        tmp_path,
        routing_file=str(EXAMPLE_ROUTING),
        api_keys=json.dumps(EXAMPLE_KEYS),
        profiles_dir=str(profiles),
    )
    assert code != 0
    assert one_error_line(stderr) == (
        f"Error: {profiles / 'acme.yaml'}: profile 'acme': judge provider 'primary' is not in "
        f"routing file {EXAMPLE_ROUTING} (providers there: anthropic, local, offline, openai)"
    )


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "routing.yaml",
            'x: &lol ["lol", "lol"]\ny: [*lol, *lol]\n',
            "routing.yaml:1: not valid YAML: YAML anchor &lol is not allowed here",
        ),
        (
            "routing.yaml",
            "providers: {offline: {type: offline}}\n"
            "aliases: {a: {chain: [{provider: offline, model: offline}]}}\n"
            "default_alias: a\ndefault_aliases: {IMAGE: hero-image}\n",
            "routing.yaml: (top level): Value error, default_aliases.IMAGE 'hero-image' is not "
            "among the aliases",
        ),
        (
            "routing.yaml",
            "providers: {offline: {type: offline}}\n"
            "aliases: {a: {chain: [{provider: offline, model: offline}],"
            " fallback: {file: absent.png}}}\ndefault_alias: a\n",
            "absent.png: fallback file of alias 'a' cannot be read: No such file or directory",
        ),
        (
            "destinations.yaml",
            "destinations:\n  a: {type: filesystem, root: x}\n  a: {type: filesystem, root: y}\n"
            "default: a\n",
            "destinations.yaml:3: not valid YAML: duplicate key 'a' (first at line 2)",
        ),
    ],
)
def test_bad_configuration_files_are_one_line(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    setting = "routing_file" if name.startswith("routing") else "destinations_file"
    code, stderr = start_worker(tmp_path, **{setting: str(path)})
    assert code != 0
    line = one_error_line(stderr)
    assert line.startswith(f"Error: {tmp_path}"), line
    assert expected in line


def test_an_unreadable_c2pa_certificate_is_one_line(tmp_path: Path) -> None:
    """Before: a ValueError traceback from the deliver stage's start-up."""
    code, stderr = start_worker(tmp_path, c2pa_cert_file=str(tmp_path / "absent.pem"))
    assert code != 0
    assert "c2pa_cert_file" in one_error_line(stderr)


@pytest.mark.integration
def test_a_missing_api_key_is_one_line_on_the_real_broker(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    code, stderr = start_worker(
        tmp_path, kafka_bootstrap, routing_file=str(EXAMPLE_ROUTING), api_keys="{}"
    )
    assert code != 0
    assert "provider 'openai' needs API key 'openai'" in one_error_line(stderr)


@pytest.mark.parametrize(
    ("api_keys", "why"),
    [
        ('{"openai": "sk-DO-NOT-ECHO-0123456789\\n"}', "'openai' holds a control character"),
        ('{"openai": "sk-DO-NOT-ECHO-0123456789', "ASSETLINE_API_KEYS is not JSON"),
        ('["sk-DO-NOT-ECHO-0123456789"]', "not an array"),
    ],
)
def test_a_bad_api_keys_value_is_one_line_without_the_secret(
    tmp_path: Path, api_keys: str, why: str
) -> None:
    """Issue 12 #5/#15: a newline key leaked into events; a mistyped value was echoed."""
    code, stderr = start_worker(tmp_path, api_keys=api_keys)
    assert code != 0
    line = one_error_line(stderr)
    assert why in line
    assert "DO-NOT-ECHO" not in stderr
