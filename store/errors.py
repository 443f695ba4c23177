"""Typed errors of the order store (docs/store.md).

``InvalidQuery`` carries a stable ``code`` the gateway answers with 422; ``StoreUnavailable``
means the database cannot be reached or answered with a connection error (503).
"""

from __future__ import annotations

from typing import Literal

InvalidQueryCode = Literal[
    "invalid_filter",
    "invalid_date",
    "invalid_range",
    "invalid_limit",
    "invalid_cursor",
    "cursor_mismatch",
    "range_too_large",
]


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class InvalidQuery(StoreError):
    """A filter, date, range, limit or cursor the store refuses; ``code`` is stable."""

    def __init__(self, code: InvalidQueryCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code: InvalidQueryCode = code
        self.message = message
        self.field = field


class InvalidWrite(StoreError):
    """A write that contradicts itself (for example events numbered above ``lastSeq``)."""


class StoreUnavailable(StoreError):
    """The database is unreachable, refused the connection or timed out."""


class SchemaBehind(StoreUnavailable):
    """The database has no schema or an older one: run ``cotpay-escrow db upgrade``."""


class FindingNotFound(StoreError):
    """No finding with that id."""
