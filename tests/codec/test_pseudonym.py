from __future__ import annotations

import re

import pytest

from runtime.codec import CodecSettings, search_salt
from workflows.pseudonym import search_id, search_id_hex_salt


def test_stable_hex_and_keyed() -> None:
    salt = search_salt(b"search-key-1")
    first = search_id("0912345678", salt)
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert search_id("0912345678", salt) == first
    assert search_id(" 0912345678 ", salt) == first
    assert search_id("0912345679", salt) != first
    assert search_id("0912345678", search_salt(b"search-key-2")) != first
    assert "0912345678" not in first


def test_hex_salt_form_matches_bytes_form() -> None:
    salt = search_salt(b"k")
    assert search_id_hex_salt("0987654321", salt.hex()) == search_id("0987654321", salt)


def test_known_vector() -> None:
    # Pinned so that a change of algorithm (which would orphan every stored attribute) fails.
    assert search_id("0912345678", b"k") == "df5fb94566557dfa77db0bd76efa4b73"


def test_empty_key_refused() -> None:
    with pytest.raises(ValueError):
        search_id("0912345678", b"")


def test_search_value_for_operators() -> None:
    off = CodecSettings(ESCROW_PSEUDONYMIZE_SEARCH=False)
    assert off.search_value(" 0912345678 ") == "0912345678"
    on = CodecSettings(ESCROW_PSEUDONYMIZE_SEARCH=True, ESCROW_SEARCH_KEY="k")
    assert on.search_value("0912345678") == search_id("0912345678", search_salt(b"k"))
