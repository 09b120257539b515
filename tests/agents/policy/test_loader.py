"""Brand profiles: files in a folder, campaign overrides merged and validated at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.policy import (
    DEFAULT_POLICY,
    PolicyError,
    ProfileFileError,
    load_profiles,
)

ACME = """
id: acme
name: ACME Corp
copyright: "(c) ACME Corp"
max_attempts: 3
palette:
  colors: ["#E4002B", "#FFFFFF"]
  max_delta_e: 10
  min_share: 0.8
text:
  prohibited: ["free", "guaranteed"]
  required: ["Terms apply."]
campaigns:
  spring-sale:
    palette:
      min_share: 0.9
    text:
      prohibited: ["cheap"]
  quiet:
    max_attempts: 1
    review: false
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_brand_policy_applies_to_campaigns_without_an_override(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", ACME)
    book = load_profiles(tmp_path)
    policy = book.resolve("acme", "autumn")
    assert not isinstance(policy, PolicyError)
    assert policy.label == "acme"
    assert policy.palette is not None
    assert policy.palette.min_share == 0.8
    assert policy.text is not None
    assert policy.text.prohibited == ["free", "guaranteed"]


def test_campaign_override_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", ACME)
    policy = load_profiles(tmp_path).resolve("acme", "spring-sale")
    assert not isinstance(policy, PolicyError)
    assert policy.label == "acme/spring-sale"
    assert policy.palette is not None
    assert policy.palette.min_share == 0.9
    assert policy.palette.max_delta_e == 10  # kept from the brand
    assert policy.text is not None
    assert policy.text.prohibited == ["cheap"]  # a list replaces
    assert policy.text.required == ["Terms apply."]  # a sibling key is kept
    assert policy.copyright == "(c) ACME Corp"


def test_campaign_override_of_scalars(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", ACME)
    policy = load_profiles(tmp_path).resolve("acme", "quiet")
    assert not isinstance(policy, PolicyError)
    assert (policy.max_attempts, policy.review) == (1, False)


def test_unknown_profile_is_an_error_naming_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", ACME)
    error = load_profiles(tmp_path).resolve("globex", "c-1")
    assert isinstance(error, PolicyError)
    assert error.code == "policy.unknown_profile"
    assert "'globex'" in error.message
    assert "acme" in error.message


def test_no_profile_means_the_builtin_default_unless_the_folder_has_one(tmp_path: Path) -> None:
    assert load_profiles(None).resolve(None, "c") is DEFAULT_POLICY
    assert DEFAULT_POLICY.max_attempts == 1
    assert not DEFAULT_POLICY.review
    write(tmp_path, "default.toml", 'max_attempts = 2\n[text]\nprohibited = ["free"]\n')
    policy = load_profiles(tmp_path).resolve(None, "c")
    assert not isinstance(policy, PolicyError)
    assert (policy.id, policy.max_attempts) == ("default", 2)


def test_toml_and_json_files_and_the_id_defaults_to_the_file_name(tmp_path: Path) -> None:
    write(tmp_path, "globex.toml", "max_attempts = 4\n")
    write(tmp_path, "initech.json", '{"review": false}')
    write(tmp_path, "notes.txt", "not a profile")
    book = load_profiles(tmp_path)
    assert len(book) == 2
    globex = book.resolve("globex", "c")
    initech = book.resolve("initech", "c")
    assert not isinstance(globex, PolicyError)
    assert globex.max_attempts == 4
    assert not isinstance(initech, PolicyError)
    assert initech.review is False


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("bad.yaml", "palette: [unclosed", "not valid YAML"),
        ("typo.yaml", "max_atempts: 3\n", "max_atempts"),
        ("range.yaml", "max_attempts: 0\n", "max_attempts"),
        ("list.yaml", "- a\n- b\n", "a profile is a mapping"),
        (
            "camp.yaml",
            "campaigns:\n  c1:\n    palette:\n      min_share: 2\n",
            "campaign 'c1'",
        ),
        ("hex.yaml", "palette:\n  colors: ['red-ish']\n", "colors"),
    ],
)
def test_bad_files_fail_the_load_with_the_file_name(
    tmp_path: Path, name: str, text: str, fragment: str
) -> None:
    write(tmp_path, name, text)
    with pytest.raises(ProfileFileError) as caught:
        load_profiles(tmp_path)
    assert name in str(caught.value)
    assert fragment in str(caught.value)


def test_two_files_claiming_one_id_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "id: acme\n")
    write(tmp_path, "b.yaml", "id: acme\n")
    with pytest.raises(ProfileFileError, match="already defined"):
        load_profiles(tmp_path)


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileFileError, match="does not exist"):
        load_profiles(tmp_path / "nope")


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("acme.yaml", "id: acme\ntext:\n  prohibited: [free]\n  prohibited: []\n", ":4: "),
        ("acme.json", '{"id": "acme",\n "review": true,\n "review": false}', ":3: "),
        ("acme.toml", "review = true\nreview = false\n", ":2: "),
    ],
)
def test_a_key_written_twice_is_refused_not_last_wins(
    tmp_path: Path, name: str, text: str, fragment: str
) -> None:
    """The second ``prohibited`` silently emptied the banned-term list before."""
    write(tmp_path, name, text)
    with pytest.raises(ProfileFileError) as caught:
        load_profiles(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / name}{fragment}")
    assert "\n" not in str(caught.value)


def test_yaml_aliases_are_refused_in_profiles(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", "text:\n  prohibited: &t [free]\n  required: *t\n")
    with pytest.raises(ProfileFileError, match=r"acme\.yaml:2: not valid YAML: YAML anchor &t"):
        load_profiles(tmp_path)


def test_a_validation_error_is_one_line_naming_file_and_field(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", "max_attempts: 0\nreview: maybe\n")
    with pytest.raises(ProfileFileError) as caught:
        load_profiles(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'acme.yaml'}: max_attempts: ")
    assert message.endswith("(and 1 more)")
    assert "\n" not in message


def test_a_judge_provider_missing_from_the_routing_file_is_one_line(tmp_path: Path) -> None:
    judge = "{provider: primary, model: m, rubric: r}"
    write(tmp_path, "acme.yaml", f"campaigns:\n  c1:\n    judge: {judge}\n")
    write(tmp_path, "other.yaml", "max_attempts: 2\n")
    book = load_profiles(tmp_path)
    book.require_judge_providers({"offline", "primary"}, "routing file r.yaml")
    with pytest.raises(ProfileFileError) as caught:
        book.require_judge_providers({"offline", "openai"}, "routing file r.yaml")
    assert str(caught.value) == (
        f"{tmp_path / 'acme.yaml'}: profile 'acme/c1': judge provider 'primary' is not in "
        "routing file r.yaml (providers there: offline, openai)"
    )
