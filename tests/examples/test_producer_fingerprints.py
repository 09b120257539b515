"""The Java and Node example producers frame records exactly as the line expects (no broker).

Both must put ``C3 01`` + the CRC-64-AVRO fingerprint of the Parsing Canonical Form in front of
the body; a different fingerprint makes the line dead-letter every record as an unknown schema.
"""

from __future__ import annotations

import schemas
from streams.codecs import schema_fingerprint
from tests.examples._producers import SCHEMAS, java_command, node_command, run

MAGIC = b"\xc3\x01"  # Avro spec, single-object encoding, marker bytes
AVSC_FILES = sorted(SCHEMAS / name for name in schemas.FILES.values())


def _expected() -> dict[str, bytes]:
    return {file: schema_fingerprint(schemas.load(name)) for name, file in schemas.FILES.items()}


def _hex_by_file(stdout: str) -> dict[str, bytes]:
    """Parse ``<hex> <file name>`` lines."""
    out: dict[str, bytes] = {}
    for line in stdout.splitlines():
        hex_value, name = line.split()
        out[name] = bytes.fromhex(hex_value)
    return out


def test_every_contract_is_covered() -> None:
    assert len(AVSC_FILES) == len(list(SCHEMAS.glob("*.avsc"))) >= 8


def test_node_fingerprint_matches_python_for_every_schema() -> None:
    done = run([*node_command(), "--fingerprint", *map(str, AVSC_FILES)], cwd=SCHEMAS, timeout=60)
    assert _hex_by_file(done.stdout) == _expected()


def test_java_encoder_header_matches_python_for_every_schema() -> None:
    done = run([*java_command(), "--fingerprint", *map(str, AVSC_FILES)], cwd=SCHEMAS, timeout=120)
    headers = _hex_by_file(done.stdout)
    assert headers == {file: MAGIC + fp for file, fp in _expected().items()}
