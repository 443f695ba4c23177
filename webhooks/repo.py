"""The webhook tables (store/schema.py, revision 0003): the outbox and its delivery state.

Every statement is a SQLAlchemy expression with bound values. Write transactions start with a
write (an INSERT or UPDATE), so on SQLite they take the write lock at once and wait for it
(busy timeout) instead of failing on a stale read snapshot.

- ``take_events``: new status entries of ``order_events`` become ``webhook_events`` (with the
  exact body sent) and one ``webhook_deliveries`` row per subscribed endpoint, once.
- ``claim``: due deliveries of one endpoint, each the earliest undelivered one of its order
  (per-order order), leased to one dispatcher (``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
- ``finish``: the outcome of an attempt, only by the lease's owner.
- ``sweep``: deliveries whose retry window is over, or whose order has an earlier failed one,
  become ``failed``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from store.db import Database
from store.errors import StoreUnavailable
from store.schema import (
    order_events,
    webhook_deliveries,
    webhook_endpoints,
    webhook_events,
)
from webhooks.events import SENT_STATUSES, EventType, event_body, event_id, subscribed
from webhooks.models import Delivery, DeliveryStatus, DisabledReason, Endpoint
from workflows.models import OrderView

D = webhook_deliveries.c
W = webhook_endpoints.c
E = webhook_events.c
PENDING = DeliveryStatus.PENDING.value
DELIVERED = DeliveryStatus.DELIVERED.value
FAILED = DeliveryStatus.FAILED.value
BLOCKED_ERROR = "not sent: an earlier event of this order failed for this endpoint (resend it)"
DELETE_ATTEMPTS = 3
UNSENT_ERROR = "not sent within the retry window (endpoint disabled or busy)"


@dataclass(frozen=True)
class EndpointRow:
    """An endpoint as the store holds it (the secrets still sealed)."""

    id: str
    merchant: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    consecutive_failures: int
    failing_since: datetime | None
    last_success_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: RowMapping) -> EndpointRow:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def public(self) -> Endpoint:
        expires = self.previous_secret_expires_at if self.previous_secret else None
        return Endpoint(
            id=self.id,
            url=self.url,
            event_types=list(self.event_types),
            description=self.description,
            enabled=self.enabled,
            disabled_reason=DisabledReason(self.disabled_reason) if self.disabled_reason else None,
            disabled_at=self.disabled_at,
            previous_secret_expires_at=expires,
            consecutive_failures=self.consecutive_failures,
            failing_since=self.failing_since,
            last_success_at=self.last_success_at,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to this dispatcher, with what it sends."""

    id: int
    endpoint_id: str
    event_id: str
    type: str
    order_ref: str
    seq: int
    attempts: int
    expires_at: datetime
    payload: str


# --- endpoints ------------------------------------------------------------------------------


async def insert_endpoint(db: Database, values: dict[str, Any]) -> None:
    async with db.begin() as conn:
        await conn.execute(insert(webhook_endpoints).values(values))


async def count_endpoints(db: Database, merchant: str) -> int:
    async with db.connect() as conn:
        found = await conn.execute(
            select(func.count()).select_from(webhook_endpoints).where(W.merchant == merchant)
        )
        return int(found.scalar_one())


async def get_endpoint(db: Database, endpoint_id: str, merchant: str | None) -> EndpointRow | None:
    where = [W.id == endpoint_id]
    if merchant is not None:
        where.append(W.merchant == merchant)
    async with db.connect() as conn:
        row = (await conn.execute(select(webhook_endpoints).where(*where))).first()
    return EndpointRow.of(row._mapping) if row is not None else None


async def list_endpoints(db: Database, merchant: str | None = None) -> list[EndpointRow]:
    stmt = select(webhook_endpoints).order_by(W.created_at, W.id)
    if merchant is not None:
        stmt = stmt.where(W.merchant == merchant)
    async with db.connect() as conn:
        return [EndpointRow.of(r._mapping) for r in await conn.execute(stmt)]


async def update_endpoint(
    db: Database, endpoint_id: str, merchant: str, values: dict[str, Any]
) -> bool:
    async with db.begin() as conn:
        done = await conn.execute(
            update(webhook_endpoints)
            .where(W.id == endpoint_id, W.merchant == merchant)
            .values(values)
            .returning(W.id)
        )
        return done.first() is not None


async def delete_endpoint(db: Database, endpoint_id: str, merchant: str) -> bool:
    """Remove the endpoint and its deliveries (the events stay: other endpoints share them)."""
    for _ in range(DELETE_ATTEMPTS):
        try:
            async with db.begin() as conn:
                await conn.execute(
                    delete(webhook_deliveries).where(
                        D.endpoint_id == endpoint_id,
                        D.endpoint_id.in_(
                            select(W.id).where(W.id == endpoint_id, W.merchant == merchant)
                        ),
                    )
                )
                gone = await conn.execute(
                    delete(webhook_endpoints)
                    .where(W.id == endpoint_id, W.merchant == merchant)
                    .returning(W.id)
                )
                return gone.first() is not None
        except IntegrityError:
            continue  # a dispatcher added a delivery for it meanwhile: delete again
    raise StoreUnavailable(f"could not delete webhook endpoint {endpoint_id}: keeps changing")


async def record_attempt_health(
    db: Database,
    endpoint_id: str,
    *,
    ok: bool,
    now: datetime,
    disable_after_failures: int,
    disable_after: timedelta,
) -> bool:
    """Update the endpoint's failure streak after an attempt; disable it when the streak is at
    least ``disable_after_failures`` attempts and ``disable_after`` long. True when this call
    disabled it."""
    async with db.begin() as conn:
        if ok:
            await conn.execute(
                update(webhook_endpoints)
                .where(W.id == endpoint_id)
                .values(consecutive_failures=0, failing_since=None, last_success_at=now)
            )
            return False
        row = (
            await conn.execute(
                update(webhook_endpoints)
                .where(W.id == endpoint_id)
                .values(
                    consecutive_failures=W.consecutive_failures + 1,
                    failing_since=func.coalesce(W.failing_since, now),
                )
                .returning(W.consecutive_failures, W.failing_since, W.enabled)
            )
        ).first()
        if row is None or not row.enabled:
            return False
        if row.consecutive_failures < disable_after_failures:
            return False
        if row.failing_since is None or now - row.failing_since < disable_after:
            return False
        done = await conn.execute(
            update(webhook_endpoints)
            .where(W.id == endpoint_id, W.enabled.is_(True))
            .values(
                enabled=False,
                disabled_reason=DisabledReason.FAILING.value,
                disabled_at=now,
                updated_at=now,
            )
            .returning(W.id)
        )
        return done.first() is not None


# --- taking events from the store ------------------------------------------------------------


async def take_events(
    db: Database,
    *,
    now: datetime,
    window: timedelta,
    lookback: timedelta,
    limit: int,
    view_of: Callable[[str, str], Awaitable[OrderView | None]],
) -> list[tuple[str, datetime]]:
    """Turn new status entries into events and deliveries; returns (event id, recorded at) of
    the events this call made. Entries recorded before an endpoint existed are not sent to it;
    an entry goes only to its order's merchant's endpoints. ``view_of(merchant, orderRef)``:
    the order view the body carries."""
    endpoints = await list_endpoints(db)
    if not endpoints:
        return []
    o = order_events.c
    async with db.connect() as conn:
        newest = (await conn.execute(select(func.max(E.recorded_at)))).scalar()
        floor = min(ep.created_at for ep in endpoints) - lookback
        if newest is not None:
            floor = max(floor, newest - lookback)
        taken = exists().where(E.merchant == o.merchant, E.order_ref == o.order_ref, E.seq == o.seq)
        rows = (
            await conn.execute(
                select(o.order_ref, o.seq, o.time, o.status, o.recorded_at, o.merchant)
                .where(
                    o.kind == "status",
                    o.status.in_(SENT_STATUSES),
                    o.recorded_at >= floor,
                    o.merchant.in_(sorted({ep.merchant for ep in endpoints})),
                    ~taken,
                )
                .order_by(o.recorded_at, o.merchant, o.order_ref, o.seq)
                .limit(limit)
            )
        ).all()
    if not rows:
        return []
    views: dict[tuple[str, str], OrderView | None] = {}
    for row in rows:
        if (row.merchant, row.order_ref) not in views:
            views[(row.merchant, row.order_ref)] = await view_of(row.merchant, row.order_ref)
    made: list[tuple[str, datetime]] = []
    async with db.begin() as conn:
        for row in rows:
            view = views[(row.merchant, row.order_ref)]
            event_type = EventType(f"order.{row.status.lower()}")
            if view is None:
                continue
            the_id = event_id(row.order_ref, row.seq, row.merchant)
            inserted = await conn.execute(
                db.insert(webhook_events)
                .values(
                    id=the_id,
                    order_ref=row.order_ref,
                    seq=row.seq,
                    merchant=row.merchant,
                    type=event_type.value,
                    created=row.time,
                    recorded_at=row.recorded_at,
                    payload=event_body(
                        row.order_ref, row.seq, event_type, row.time, view, row.merchant
                    ),
                )
                .on_conflict_do_nothing()
                .returning(E.id)
            )
            if inserted.first() is None:
                continue  # another dispatcher took it
            made.append((the_id, row.recorded_at))
            targets = [
                ep
                for ep in endpoints
                if ep.merchant == row.merchant
                and ep.created_at <= row.recorded_at
                and subscribed(ep.event_types, event_type.value)
            ]
            if targets:
                await conn.execute(
                    db.insert(webhook_deliveries)
                    .values(
                        [
                            {
                                "endpoint_id": ep.id,
                                "event_id": the_id,
                                "order_ref": row.order_ref,
                                "seq": row.seq,
                                "status": PENDING,
                                "attempts": 0,
                                "next_attempt_at": now,
                                "expires_at": now + window,
                                "created_at": now,
                            }
                            for ep in targets
                        ]
                    )
                    .on_conflict_do_nothing()
                )
    return made


# --- claiming and finishing deliveries -------------------------------------------------------


def _lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(D.leased_until.is_(None), D.leased_until < now)


async def due_endpoints(db: Database, *, now: datetime) -> set[str]:
    """Endpoints with a delivery whose next attempt has come and that nobody holds."""
    async with db.connect() as conn:
        rows = await conn.execute(
            select(D.endpoint_id)
            .where(D.status == PENDING, D.next_attempt_at <= now, _lease_free(now))
            .distinct()
        )
        return {r.endpoint_id for r in rows}


async def claim(
    db: Database,
    endpoint_id: str,
    *,
    now: datetime,
    lease_until: datetime,
    owner: str,
    limit: int,
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries of the endpoint. A delivery is due when its next
    attempt has come, nobody holds its lease, and every earlier delivery of the same order to
    this endpoint was delivered."""
    if limit <= 0:
        return []
    earlier = webhook_deliveries.alias("earlier")
    blocked = exists().where(
        earlier.c.endpoint_id == D.endpoint_id,
        earlier.c.order_ref == D.order_ref,
        earlier.c.seq < D.seq,
        earlier.c.status != DELIVERED,
    )
    due = (
        select(D.id)
        .where(
            D.endpoint_id == endpoint_id,
            D.status == PENDING,
            D.next_attempt_at <= now,
            _lease_free(now),
            ~blocked,
        )
        .order_by(D.next_attempt_at, D.id)
        .limit(limit)
    )
    if db.dialect == "postgresql":
        due = due.with_for_update(skip_locked=True, of=webhook_deliveries)
    async with db.begin() as conn:
        ids = [
            r.id
            for r in await conn.execute(
                update(webhook_deliveries)
                .where(D.id.in_(due.scalar_subquery()))
                .values(leased_until=lease_until, lease_owner=owner)
                .returning(D.id)
            )
        ]
        if not ids:
            return []
        rows = await conn.execute(
            select(
                D.id,
                D.endpoint_id,
                D.event_id,
                E.type,
                D.order_ref,
                D.seq,
                D.attempts,
                D.expires_at,
                E.payload,
            )
            .join(webhook_events, E.id == D.event_id)
            .where(D.id.in_(ids))
            .order_by(D.next_attempt_at, D.id)
        )
        return [Claimed(**r._mapping) for r in rows]


async def finish(
    db: Database,
    claimed: Claimed,
    *,
    owner: str,
    attempted_at: datetime,
    status: DeliveryStatus,
    next_attempt_at: datetime | None,
    expires_at: datetime,
    status_code: int | None,
    latency_ms: int,
    error: str | None,
    response: str | None,
) -> bool:
    """Record an attempt's outcome; False when the lease was lost (another dispatcher owns the
    delivery now, which then sends it again: at least once)."""
    values: dict[str, Any] = {
        "status": status.value,
        "attempts": D.attempts + 1,
        "last_attempt_at": attempted_at,
        "last_status_code": status_code,
        "last_latency_ms": latency_ms,
        "last_error": error,
        "last_response": response,
        "expires_at": expires_at,
        "leased_until": None,
        "lease_owner": None,
    }
    if status is DeliveryStatus.DELIVERED:
        values["delivered_at"] = attempted_at
    elif status is DeliveryStatus.FAILED:
        values["failed_at"] = attempted_at
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    async with db.begin() as conn:
        done = await conn.execute(
            update(webhook_deliveries)
            .where(D.id == claimed.id, D.lease_owner == owner, D.status == PENDING)
            .values(values)
            .returning(D.id)
        )
        return done.first() is not None


async def release(db: Database, claimed_ids: Sequence[int], owner: str) -> None:
    """Give leases back unattempted (a dispatcher stopping, or a secret it cannot open)."""
    if not claimed_ids:
        return
    async with db.begin() as conn:
        await conn.execute(
            update(webhook_deliveries)
            .where(D.id.in_(list(claimed_ids)), D.lease_owner == owner)
            .values(leased_until=None, lease_owner=None)
        )


async def sweep(db: Database, *, now: datetime, grace: timedelta = timedelta(0)) -> int:
    """Fail pending deliveries whose window ended ``grace`` ago (the last attempt at the end of
    the window had its chance), or whose order has an earlier failed one; returns how many."""
    earlier = webhook_deliveries.alias("earlier")
    failed_before = exists().where(
        earlier.c.endpoint_id == D.endpoint_id,
        earlier.c.order_ref == D.order_ref,
        earlier.c.seq < D.seq,
        earlier.c.status == FAILED,
    )
    async with db.begin() as conn:
        expired = await conn.execute(
            update(webhook_deliveries)
            .where(D.status == PENDING, D.expires_at <= now - grace, _lease_free(now))
            .values(
                status=FAILED,
                failed_at=now,
                last_error=func.coalesce(D.last_error, UNSENT_ERROR),
                leased_until=None,
                lease_owner=None,
            )
            .returning(D.id)
        )
        count = len(expired.all())
        blocked = await conn.execute(
            update(webhook_deliveries)
            .where(D.status == PENDING, _lease_free(now), failed_before)
            .values(
                status=FAILED,
                failed_at=now,
                last_error=BLOCKED_ERROR,
                leased_until=None,
                lease_owner=None,
            )
            .returning(D.id)
        )
        return count + len(blocked.all())


async def backlog(db: Database) -> tuple[int, datetime | None]:
    """Pending deliveries and the creation time of the oldest."""
    async with db.connect() as conn:
        row = (
            await conn.execute(
                select(func.count(), func.min(D.created_at)).where(D.status == PENDING)
            )
        ).one()
    return int(row[0]), row[1]


# --- the deliveries view ---------------------------------------------------------------------


def _delivery(row: RowMapping) -> Delivery:
    status = DeliveryStatus(row["status"])
    return Delivery(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        event_id=row["event_id"],
        type=row["type"],
        order_ref=row["order_ref"],
        seq=row["seq"],
        status=status,
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"] if status is DeliveryStatus.PENDING else None,
        expires_at=row["expires_at"],
        last_attempt_at=row["last_attempt_at"],
        last_status_code=row["last_status_code"],
        last_latency_ms=row["last_latency_ms"],
        last_error=row["last_error"],
        last_response=row["last_response"],
        delivered_at=row["delivered_at"],
        failed_at=row["failed_at"],
        created_at=row["created_at"],
    )


def _delivery_columns() -> list[Any]:
    return [*webhook_deliveries.c, E.type]


async def list_deliveries(
    db: Database,
    endpoint_id: str,
    *,
    status: DeliveryStatus | None = None,
    order_ref: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[Delivery], int | None]:
    """The endpoint's deliveries, newest first; and the ``before`` of the next page."""
    where: list[ColumnElement[bool]] = [D.endpoint_id == endpoint_id]
    if status is not None:
        where.append(D.status == status.value)
    if order_ref is not None:
        where.append(D.order_ref == order_ref)
    if before is not None:
        where.append(D.id < before)
    stmt = (
        select(*_delivery_columns())
        .join(webhook_events, E.id == D.event_id)
        .where(and_(*where))
        .order_by(D.id.desc())
        .limit(limit + 1)
    )
    async with db.connect() as conn:
        rows = [_delivery(r._mapping) for r in await conn.execute(stmt)]
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


async def get_delivery(db: Database, endpoint_id: str, delivery_id: int) -> Delivery | None:
    async with db.connect() as conn:
        row = (
            await conn.execute(
                select(*_delivery_columns())
                .join(webhook_events, E.id == D.event_id)
                .where(D.endpoint_id == endpoint_id, D.id == delivery_id)
            )
        ).first()
    return _delivery(row._mapping) if row is not None else None


async def resend(
    db: Database, endpoint_id: str, delivery_id: int, *, now: datetime, window: timedelta
) -> bool:
    """Queue the delivery again now, with the failed deliveries of the same order before it
    (so the endpoint still gets them in order). A delivery in flight is left as it is."""
    async with db.begin() as conn:
        target = (
            await conn.execute(
                update(webhook_deliveries)
                .where(D.endpoint_id == endpoint_id, D.id == delivery_id, _lease_free(now))
                .values(
                    status=PENDING,
                    next_attempt_at=now,
                    expires_at=now + window,
                    delivered_at=None,
                    failed_at=None,
                    leased_until=None,
                    lease_owner=None,
                )
                .returning(D.order_ref, D.seq)
            )
        ).first()
        if target is None:
            return False
        await conn.execute(
            update(webhook_deliveries)
            .where(
                D.endpoint_id == endpoint_id,
                D.order_ref == target.order_ref,
                D.seq < target.seq,
                D.status == FAILED,
            )
            .values(
                status=PENDING,
                next_attempt_at=now,
                expires_at=now + window,
                failed_at=None,
            )
        )
        return True
