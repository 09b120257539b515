"""The example consumers decode real completions with only the .avsc files, no assetline."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest

from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import mixed_requests, submit_requests

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "consumers"


def isolated(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """-S: no site, so the editable assetline install is not on the path; -E: no PYTHON* vars.

    The third-party packages (fastavro, aiokafka, confluent-kafka) come from site-packages
    alone, added by hand, so ``import streams`` fails exactly as on a consumer's machine.
    """
    purelib = sysconfig.get_paths()["purelib"]
    bootstrap = f"import sys; sys.path.append({purelib!r}); sys.argv = sys.argv[1:]; "
    return subprocess.run(
        [
            sys.executable,
            "-S",
            "-E",
            "-c",
            bootstrap + "import runpy; runpy.run_path(sys.argv[0], run_name='__main__')",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_assetline_is_not_importable_in_the_isolated_interpreter(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import fastavro\nimport streams\n")
    result = isolated([str(probe)], tmp_path)
    assert result.returncode != 0
    assert "No module named 'streams'" in result.stderr


@pytest.mark.parametrize("script", ["python_aiokafka.py", "python_confluent.py"])
def test_example_consumer_decodes_completions(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
    script: str,
) -> None:
    requests = [e.request for e in mixed_requests(10)]

    asyncio.run(submit_requests(line_settings, requests))
    worker = start_worker(line_settings)
    ids = [r.request_id for r in requests]
    done = asyncio.run(await_completions(line_settings, ids, timeout=90))
    assert set(done) == set(ids), worker.log_tail()

    topic = TopicNames.with_prefix(line_settings.topic_prefix).completed
    args = [str(EXAMPLES / script), "--bootstrap", line_settings.kafka_bootstrap]
    args += ["--topic", topic, "--schemas", str(ROOT / "schemas"), "--count", str(len(ids))]
    result = isolated(args, tmp_path)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["request_id"]: r["status"] for r in records} == {
        i: done[i][-1].status.value for i in ids
    }
