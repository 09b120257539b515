"""Secrets are scrubbed in every form an error can quote them in, before any cut to length."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, quote_plus

import pytest

from streams.redaction import MASK, redact, redact_and_truncate, secret_forms

KEY = "sk-proj-Abc/def+ghi=jkl0123456789\n"
CORE = KEY.strip()


@pytest.mark.parametrize(
    "leak",
    [
        KEY,
        CORE,
        repr(KEY),  # httpx/h11: Illegal header value b'Bearer sk-...\n'
        repr(KEY.encode()),
        json.dumps(KEY),  # a JSON error body
        json.dumps(json.dumps(KEY)),  # an error quoting a JSON error
        repr(json.dumps(KEY)),
        quote(KEY, safe=""),  # a URL
        re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(KEY, safe="")),
        quote_plus(KEY),
        quote(quote(KEY, safe=""), safe=""),
        KEY.encode("unicode_escape").decode(),
    ],
)
def test_every_escaped_form_is_masked(leak: str) -> None:
    text = redact(f"before {leak} after", [KEY])
    assert text.startswith("before ")
    assert text.endswith(" after")
    assert MASK in text
    assert "Abc" not in text
    assert "0123456789" not in text


@pytest.mark.parametrize("user", ["u", "us", "use", "user", "api-user"])
def test_base64_of_user_and_key_is_masked_whatever_the_alignment(user: str) -> None:
    header = base64.b64encode(f"{user}:{CORE}".encode()).decode()
    text = redact(f"Authorization: Basic {header}", [KEY])
    assert header not in text
    # what is left around the mask encodes at most two bytes of the key on either side
    assert len(text.replace("Authorization: Basic ", "").replace(MASK, "")) <= 12


def test_a_key_cut_by_the_length_limit_leaves_nothing_behind() -> None:
    for padding in range(0, 60):
        text = redact_and_truncate("x" * padding + CORE + "tail", [KEY], 50)
        assert len(text) <= 50
        assert CORE[:8] not in text, padding


def test_short_values_are_not_secrets() -> None:
    assert secret_forms("1234567") == ()
    assert redact("port 1234567", ["1234567"]) == "port 1234567"


def test_ordinary_text_is_untouched() -> None:
    text = "openai: HTTP 400 Bad Request (invalid_request_error): model not found"
    assert redact(text, [KEY, "whsec_" + "A" * 32]) == text
    assert redact_and_truncate(text, [KEY], 500) == text
