"""Opaque keyset cursors for ``list_orders`` (docs/store.md).

A cursor is base64url of a small JSON object: the sort key of the last row returned (time,
orderRef and merchant: two merchants may share an orderRef; a cursor without one, made before,
means ``default``) and a fingerprint of the query (filters and sort). A cursor is accepted only
by the query that made it; a page size may change between pages. It is not a secret and not signed:
altering one can only move where the next page starts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from typing import NamedTuple

from store.errors import InvalidQuery
from store.models import OrderFilters, OrderSort
from workflows.models import DEFAULT_MERCHANT

VERSION = 1
MAX_CURSOR_CHARS = 512


class Position(NamedTuple):
    """Where a page ended: the sort time, orderRef and merchant of its last row."""

    time: datetime
    order_ref: str
    merchant: str = DEFAULT_MERCHANT


def fingerprint(filters: OrderFilters, sort: OrderSort) -> str:
    canonical = json.dumps(
        {"filters": filters.model_dump(mode="json"), "sort": sort.value},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode(position: Position, query: str) -> str:
    raw = json.dumps(
        {
            "v": VERSION,
            "q": query,
            "t": position.time.isoformat(),
            "r": position.order_ref,
            "m": position.merchant,
        },
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, query: str) -> Position:
    """The position in ``cursor``; ``InvalidQuery`` ``invalid_cursor`` when it is not one of
    ours, ``cursor_mismatch`` when it was made by another query."""
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise _bad()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _bad() from None
    if not isinstance(body, dict) or body.get("v") != VERSION:
        raise _bad()
    q, t, r = body.get("q"), body.get("t"), body.get("r")
    m = body.get("m", DEFAULT_MERCHANT)
    if not (isinstance(q, str) and isinstance(t, str) and isinstance(r, str)) or not r:
        raise _bad()
    if not isinstance(m, str) or not m:
        raise _bad()
    try:
        moment = datetime.fromisoformat(t)
    except ValueError:
        raise _bad() from None
    if moment.tzinfo is None:
        raise _bad()
    if q != query:
        raise InvalidQuery(
            "cursor_mismatch",
            "this cursor belongs to another query: repeat the filters and sort it was made with",
            "cursor",
        )
    return Position(moment, r, m)


def _bad() -> InvalidQuery:
    return InvalidQuery("invalid_cursor", "malformed cursor", "cursor")
