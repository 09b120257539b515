"""The safe configuration reader: no alias bombs, no duplicate keys, bounded size and depth."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from streams.config_files import (
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    ConfigError,
    load_config_file,
    parse_config_text,
    validation_summary,
)


def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": 9**levels strings from a few hundred bytes."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def refused(path: Path, text: str | bytes) -> str:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config_file(path)
    message = str(caught.value)
    assert "\n" not in message, "every configuration error is one line"
    return message


def test_an_alias_bomb_is_refused_at_once_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    started = time.perf_counter()
    message = refused(path, alias_bomb())
    # Before: safe_load shared the nodes, and the first walk of the data (pydantic, json.dumps
    # of a provider's params on every call) expanded 387 million strings.
    assert time.perf_counter() - started < 2.0
    assert message == (
        f"{path}:1: not valid YAML: YAML anchor &l0 is not allowed here (write the value out)"
    )


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("a: 1\nb: &x {c: 1}\n", 2, "anchor &x"),
        ("a: 1\nb:\n  - *x\n", 3, "alias *x"),
        ("base: {a: 1}\nother:\n  <<: {a: 2}\n  b: 1\n", 3, "merge keys (<<)"),
    ],
)
def test_anchors_aliases_and_merge_keys_are_refused(
    tmp_path: Path, text: str, line: int, needle: str
) -> None:
    path = tmp_path / "c.yml"
    message = refused(path, text)
    assert message.startswith(f"{path}:{line}: not valid YAML: ")
    assert needle in message


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("a: 1\nb:\n  c: 2\n  d: 3\n  c: 4\n", 5, "'c'"),
        ("providers: {x: 1, x: 2}\n", 1, "'x'"),
        ("a: 1\n\na: 1\n", 3, "'a'"),  # the same value twice is still a mistake
        ("on: 1\ntrue: 2\n", 2, "True"),  # YAML 1.1 reads both as the boolean true
    ],
)
def test_duplicate_yaml_keys_are_refused_not_last_wins(
    tmp_path: Path, text: str, line: int, key: str
) -> None:
    path = tmp_path / "c.yaml"
    message = refused(path, text)
    assert message.startswith(f"{path}:{line}: not valid YAML: duplicate key {key}")
    assert "first at line" in message


def test_duplicate_keys_in_toml_are_refused_with_their_line(tmp_path: Path) -> None:
    """tomllib refuses them already; the reader keeps that and adds file and line."""
    path = tmp_path / "c.toml"
    assert refused(path, "a = 1\nb = 2\na = 3\n").startswith(f"{path}:3: not valid TOML: ")
    tables = '[providers.x]\ntype = "offline"\n[providers.x]\ntype = "openai"\n'
    assert refused(path, tables).startswith(f"{path}:3: not valid TOML: ")


def test_duplicate_keys_in_json_are_refused_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    message = refused(path, '{"id": "acme",\n "text": {"max_chars": 1},\n "id": "evil"}')
    assert message == f"{path}:3: not valid JSON: duplicate key 'id'"
    # The same key in two different objects is fine.
    path.write_text('{"a": {"k": 1}, "b": {"k": 2}}')
    assert load_config_file(path) == {"a": {"k": 1}, "b": {"k": 2}}


def test_size_is_bounded_before_reading_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    message = refused(path, "a: 1\n" + "#" * MAX_CONFIG_BYTES)
    assert message == f"{path}: larger than {MAX_CONFIG_BYTES} bytes; not a configuration file"
    endless = tmp_path / "zero.yaml"
    endless.symlink_to("/dev/zero")  # reading it whole would never end
    with pytest.raises(ConfigError, match="larger than"):
        load_config_file(endless)


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n"),
        (".yaml", "a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n"),
        (".json", '{"a": ' + "[" * 50_000 + "]" * 50_000 + "}"),
        (".toml", "a = " + "[" * 5000 + "]" * 5000 + "\n"),
    ],
)
def test_deep_nesting_is_refused(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"deep{suffix}"
    assert refused(path, text) == f"{path}: nested too deeply (at most {MAX_DEPTH} levels)"


def test_bad_encoding_and_unknown_suffix_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    assert refused(path, b"a: 1\nb: \xff\n") == f"{path}:2: not UTF-8 text"
    ini = tmp_path / "c.ini"
    assert "must end in .yaml, .yml, .toml, .json" in refused(ini, "[a]\n")


def test_a_missing_file_or_a_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read: No such file"):
        load_config_file(tmp_path / "absent.yaml")
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(ConfigError, match=r"folder\.yaml: cannot read: Is a directory"):
        load_config_file(tmp_path / "folder.yaml")


def test_ordinary_files_read_as_before() -> None:
    text = "a: {b: [1, 2], c: 'x'}\n# comment\nd: null\ne: 2026-01-01\n"
    data = parse_config_text(text, ".yaml", "t")
    assert data["a"] == {"b": [1, 2], "c": "x"}
    assert data["d"] is None
    assert str(data["e"]) == "2026-01-01"
    assert parse_config_text("a = {b = [1, 2]}\n", ".toml", "t") == {"a": {"b": [1, 2]}}


class _Model(BaseModel):
    api_key: int
    other: int


def test_validation_summary_is_one_line_without_input_values() -> None:
    with pytest.raises(ValidationError) as caught:
        _Model.model_validate({"api_key": "sk-secret-value\nmore", "other": "x"})
    summary = validation_summary(caught.value, "routing.yaml")
    assert summary.startswith("routing.yaml: api_key: Input should be a valid integer")
    assert summary.endswith("(and 1 more)")
    assert "sk-secret" not in summary
    assert "\n" not in summary
