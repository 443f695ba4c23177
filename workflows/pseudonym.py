"""Keyed pseudonyms for the ``SellerId``/``BuyerId`` search attributes.

Search attributes are stored in clear by Temporal (the payload codec never sees them), so with
``ESCROW_PSEUDONYMIZE_SEARCH=true`` they hold ``search_id(cotpay_id, salt)`` instead of the
phone-number id. Pure and deterministic: workflow code calls it with the salt from its input,
and the CLI and client call it with the salt from ``runtime.codec.CodecSettings`` to search.

Assumption: Cotpay ids are compared after stripping surrounding whitespace only; ``0912...``
and ``+84912...`` are different ids, exactly as Cotpay treats them.
"""

from __future__ import annotations

import hashlib
import hmac

SEARCH_ID_HEX_CHARS = 32


def search_id(cotpay_id: str, key: bytes) -> str:
    """A stable hex digest of ``cotpay_id`` under ``key`` (HMAC-SHA256, first 128 bits)."""
    if not key:
        raise ValueError("search_id needs a non-empty key")
    digest = hmac.new(key, cotpay_id.strip().encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:SEARCH_ID_HEX_CHARS]


def search_id_hex_salt(cotpay_id: str, salt_hex: str) -> str:
    """``search_id`` with the salt as carried in the workflow input (hex text)."""
    return search_id(cotpay_id, bytes.fromhex(salt_hex))
