"""Reconciliation findings and stranded-money items (docs/store.md).

A finding is open until an operator closes it; it belongs to a merchant (``default`` unless
given: the merchant of its order). At most one finding of a kind is open per merchant and key
(by default the orderRef): opening it again, as a daily reconciliation or a retried activity
does, returns the open one unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, RowMapping, select, update

from store.db import Database
from store.errors import FindingNotFound
from store.models import Finding, FindingFilter, FindingKind
from store.schema import findings
from workflows.models import DEFAULT_MERCHANT

MAX_FINDINGS = 1000


def _finding(row: RowMapping) -> Finding:
    return Finding.model_validate(dict(row))


async def open_finding(
    db: Database,
    kind: FindingKind,
    *,
    merchant: str = DEFAULT_MERCHANT,
    order_ref: str | None = None,
    key: str | None = None,
    detail: str = "",
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Finding:
    """Open a finding, or return the open one of the same merchant, kind and key (``key``
    defaults to ``order_ref``; one of them is required)."""
    key = key if key is not None else order_ref
    if not key:
        raise ValueError("a finding needs an order_ref or a key")
    f = findings.c
    values = {
        "kind": kind.value,
        "merchant": merchant,
        "key": key[:200],
        "order_ref": order_ref,
        "detail": detail,
        "data": data,
        "opened_at": at or datetime.now(UTC),
    }
    stmt = (
        db.insert(findings)
        .values(values)
        .on_conflict_do_nothing(
            index_elements=[f.merchant, f.kind, f.key], index_where=f.closed_at.is_(None)
        )
    )
    async with db.begin() as conn:
        await conn.execute(stmt)
        row = (
            await conn.execute(
                select(findings).where(
                    f.merchant == merchant,
                    f.kind == kind.value,
                    f.key == values["key"],
                    f.closed_at.is_(None),
                )
            )
        ).first()
    assert row is not None
    return _finding(row._mapping)


async def list_findings(
    db: Database, where: FindingFilter | None = None, limit: int = MAX_FINDINGS
) -> list[Finding]:
    """Findings, oldest first (open ones only, by default)."""
    where = where or FindingFilter()
    f = findings.c
    clauses: list[ColumnElement[bool]] = []
    if where.open_only:
        clauses.append(f.closed_at.is_(None))
    if where.kind is not None:
        clauses.append(f.kind == where.kind.value)
    if where.merchant is not None:
        clauses.append(f.merchant == where.merchant)
    if where.order_ref is not None:
        clauses.append(f.order_ref == where.order_ref)
    stmt = select(findings).where(*clauses).order_by(f.opened_at, f.id).limit(limit)
    async with db.connect() as conn:
        return [_finding(r._mapping) for r in await conn.execute(stmt)]


async def close_finding(
    db: Database, finding_id: int, closed_by: str, note: str = "", at: datetime | None = None
) -> Finding:
    """Close a finding (a closed one is returned as it is); ``FindingNotFound`` if none."""
    f = findings.c
    async with db.begin() as conn:
        await conn.execute(
            update(findings)
            .where(f.id == finding_id, f.closed_at.is_(None))
            .values(closed_at=at or datetime.now(UTC), closed_by=closed_by[:100], close_note=note)
        )
        row = (await conn.execute(select(findings).where(f.id == finding_id))).first()
    if row is None:
        raise FindingNotFound(f"no finding {finding_id}")
    return _finding(row._mapping)
