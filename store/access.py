"""Merchants, API keys and the audit trail in the store (docs/security.md).

``AccessStore`` shares the order store's database (``AccessStore(order_store.db)``) or opens its
own (``AccessStore.open()``, ``ESCROW_DATABASE_URL``). Every change to a key or a merchant writes
its audit event in the same transaction, so a change without its trace cannot happen.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from sqlalchemy import ColumnElement, RowMapping, and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from store.access_models import (
    DEFAULT_MERCHANT,
    ApiKey,
    AuditEvent,
    AuditFilter,
    CreatedKey,
    Merchant,
    Role,
    key_hash,
    new_api_key,
    parse_api_key,
)
from store.db import Database
from store.errors import StoreError
from store.schema import api_keys, audit_events, merchants
from store.settings import StoreSettings


class KeyNotFound(StoreError):
    """No API key with that id."""


class UnknownMerchant(StoreError):
    """No merchant with that name (``cotpay-escrow merchants add`` first)."""


class MerchantExists(StoreError):
    """A merchant with that name exists already."""


class Actor:
    """Who changes something: the audit trail's ``actor`` and ``key_id``."""

    def __init__(self, name: str, key_id: str | None = None, merchant: str | None = None) -> None:
        self.name = name[:200]
        self.key_id = key_id
        self.merchant = merchant


def _now() -> datetime:
    return datetime.now(UTC)


def _key(row: RowMapping | dict[str, Any]) -> ApiKey:
    values = {k: v for k, v in dict(row).items() if k != "key_hash"}
    return ApiKey.model_validate(values)


def _merchant(row: RowMapping) -> Merchant:
    values = dict(row)
    sealed = values.pop("sealed_credentials", None)
    if sealed:
        values["credentials"] = "encrypted"
    elif values.get("access_token_file") or values.get("private_key_file"):
        values["credentials"] = "files"
    else:
        values["credentials"] = "environment" if values["name"] == DEFAULT_MERCHANT else "none"
    return Merchant.model_validate(values)


class AccessStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def open(cls, url: str | None = None, settings: StoreSettings | None = None) -> Self:
        settings = settings or StoreSettings()
        if url is not None:
            settings = settings.model_copy(update={"database_url": url})
        return cls(Database.from_settings(settings))

    async def close(self) -> None:
        await self.db.close()

    # --- audit -------------------------------------------------------------------------------

    async def _audit(self, conn: AsyncConnection, event: AuditEvent) -> AuditEvent:
        values = event.model_dump(by_alias=False, exclude={"id"})
        values["target"] = values["target"][:200]
        result = await conn.execute(audit_events.insert().values(values))
        key = result.inserted_primary_key
        return event.model_copy(update={"id": int(key[0]) if key else None})

    async def record_audit(self, event: AuditEvent) -> AuditEvent:
        async with self.db.begin() as conn:
            return await self._audit(conn, event)

    async def list_audit(self, where: AuditFilter | None = None) -> list[AuditEvent]:
        """Newest first."""
        where = where or AuditFilter()
        a = audit_events.c
        conditions: list[ColumnElement[bool]] = []
        if where.since is not None:
            conditions.append(a.time >= where.since)
        if where.until is not None:
            conditions.append(a.time < where.until)
        if where.merchant is not None:
            conditions.append(a.merchant == where.merchant)
        if where.key_id is not None:
            conditions.append(a.key_id == where.key_id)
        if where.action:
            if where.action.endswith("."):
                conditions.append(a.action.startswith(where.action, autoescape=True))
            else:
                conditions.append(a.action == where.action)
        stmt = (
            select(audit_events)
            .where(and_(True, *conditions))
            .order_by(a.time.desc(), a.id.desc())
            .limit(where.limit)
        )
        async with self.db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [AuditEvent.model_validate(dict(row)) for row in rows]

    # --- merchants ---------------------------------------------------------------------------

    async def _ensure_default(self, conn: AsyncConnection, at: datetime) -> None:
        stmt = (
            self.db.insert(merchants)
            .values(name=DEFAULT_MERCHANT, created_at=at, updated_at=at)
            .on_conflict_do_nothing(index_elements=[merchants.c.name])
        )
        await conn.execute(stmt)

    async def _merchant_exists(self, conn: AsyncConnection, name: str, at: datetime) -> None:
        if name == DEFAULT_MERCHANT:
            await self._ensure_default(conn, at)
            return
        found = await conn.execute(
            select(merchants.c.name).where(
                merchants.c.name == name, merchants.c.disabled_at.is_(None)
            )
        )
        if found.first() is None:
            raise UnknownMerchant(f"no merchant {name!r}: add it with cotpay-escrow merchants add")

    async def add_merchant(
        self,
        name: str,
        *,
        by: Actor,
        app_id: str = "",
        base_url: str = "",
        envelope: str = "encrypted",
        sealed_credentials: str | None = None,
        access_token_file: str | None = None,
        private_key_file: str | None = None,
        public_key_file: str | None = None,
        at: datetime | None = None,
    ) -> Merchant:
        at = at or _now()
        values = {
            "name": name,
            "app_id": app_id,
            "base_url": base_url,
            "envelope": envelope,
            "sealed_credentials": sealed_credentials,
            "access_token_file": access_token_file,
            "private_key_file": private_key_file,
            "public_key_file": public_key_file,
            "created_at": at,
            "updated_at": at,
        }
        stmt = (
            self.db.insert(merchants)
            .values(values)
            .on_conflict_do_nothing(index_elements=[merchants.c.name])
        )
        async with self.db.begin() as conn:
            if (await conn.execute(stmt)).rowcount == 0:
                raise MerchantExists(f"merchant {name!r} exists already")
            row = (
                (await conn.execute(select(merchants).where(merchants.c.name == name)))
                .mappings()
                .one()
            )
            merchant = _merchant(row)
            await self._audit(
                conn,
                AuditEvent(
                    time=at,
                    actor=by.name,
                    key_id=by.key_id,
                    merchant=name,
                    action="merchant.add",
                    target=name,
                    data={
                        "appId": app_id,
                        "baseUrl": base_url,
                        "credentials": merchant.credentials,
                    },
                ),
            )
        return merchant

    async def disable_merchant(self, name: str, *, by: Actor, at: datetime | None = None) -> None:
        at = at or _now()
        m = merchants.c
        async with self.db.begin() as conn:
            done = await conn.execute(
                update(merchants)
                .where(m.name == name, m.disabled_at.is_(None))
                .values(disabled_at=at, updated_at=at)
            )
            if done.rowcount == 0:
                raise UnknownMerchant(f"no enabled merchant {name!r}")
            await self._audit(
                conn,
                AuditEvent(
                    time=at,
                    actor=by.name,
                    key_id=by.key_id,
                    merchant=name,
                    action="merchant.disable",
                    target=name,
                ),
            )

    async def get_merchant(self, name: str) -> Merchant | None:
        async with self.db.connect() as conn:
            row = (
                (await conn.execute(select(merchants).where(merchants.c.name == name)))
                .mappings()
                .first()
            )
        return _merchant(row) if row is not None else None

    async def merchant_secrets(self, name: str) -> dict[str, Any] | None:
        """The raw credential columns of an enabled merchant (sealed blob and file references),
        for ``store/merchants.py`` to open; None if unknown or disabled."""
        m = merchants.c
        async with self.db.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(merchants).where(m.name == name, m.disabled_at.is_(None))
                    )
                )
                .mappings()
                .first()
            )
        return dict(row) if row is not None else None

    async def list_merchants(self) -> list[Merchant]:
        """Every merchant, ``default`` (today's ``COTPAY_*``) included."""
        async with self.db.begin() as conn:
            await self._ensure_default(conn, _now())
            rows = (
                (await conn.execute(select(merchants).order_by(merchants.c.name))).mappings().all()
            )
        return [_merchant(row) for row in rows]

    # --- API keys ----------------------------------------------------------------------------

    async def create_key(
        self,
        *,
        merchant: str,
        role: Role,
        name: str,
        by: Actor,
        expires_at: datetime | None = None,
        at: datetime | None = None,
    ) -> CreatedKey:
        """A new key; the answer is the only time the key itself exists outside its holder."""
        at = at or _now()
        async with self.db.begin() as conn:
            await self._merchant_exists(conn, merchant, at)
            return await self._insert_key(
                conn,
                merchant=merchant,
                role=role,
                name=name,
                by=by,
                expires_at=expires_at,
                at=at,
                replaces=None,
                action="key.create",
            )

    async def _insert_key(
        self,
        conn: AsyncConnection,
        *,
        merchant: str,
        role: Role,
        name: str,
        by: Actor,
        expires_at: datetime | None,
        at: datetime,
        replaces: str | None,
        action: str,
    ) -> CreatedKey:
        key, key_id = new_api_key()
        values = {
            "key_id": key_id,
            "key_hash": key_hash(key),
            "name": name,
            "merchant": merchant,
            "role": role.value,
            "created_at": at,
            "created_by": by.name,
            "expires_at": expires_at,
            "replaces": replaces,
        }
        await conn.execute(api_keys.insert().values(values))
        record = ApiKey.model_validate({k: v for k, v in values.items() if k != "key_hash"})
        await self._audit(
            conn,
            AuditEvent(
                time=at,
                actor=by.name,
                key_id=by.key_id,
                merchant=merchant,
                action=action,
                target=key_id,
                data={
                    "name": name,
                    "role": role.value,
                    "expiresAt": expires_at.isoformat() if expires_at else None,
                    "replaces": replaces,
                },
            ),
        )
        return CreatedKey(key=key, api_key=record)

    async def get_key(self, key_id: str) -> ApiKey | None:
        async with self.db.connect() as conn:
            row = (
                (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)))
                .mappings()
                .first()
            )
        return _key(row) if row is not None else None

    async def authenticate(self, key: str, at: datetime | None = None) -> ApiKey | None:
        """The usable key ``key`` is, else None (malformed, unknown, wrong, revoked, expired)."""
        key_id = parse_api_key(key)
        if key_id is None:
            return None
        stmt = (
            select(api_keys, merchants.c.disabled_at.label("merchant_disabled_at"))
            .join(merchants, merchants.c.name == api_keys.c.merchant)
            .where(api_keys.c.key_id == key_id)
        )
        async with self.db.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        if row is None or not hmac.compare_digest(row["key_hash"], key_hash(key)):
            return None
        if row["merchant_disabled_at"] is not None:
            return None
        record = _key({k: v for k, v in row.items() if k != "merchant_disabled_at"})
        return record if record.usable(at or _now()) else None

    async def touch_key(self, key_id: str, at: datetime | None = None) -> None:
        """Record a use (the gateway calls it at most once a minute per key)."""
        async with self.db.begin() as conn:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id)
                .values(last_used_at=at or _now())
            )

    async def list_keys(
        self, *, merchant: str | None = None, include_revoked: bool = False
    ) -> list[ApiKey]:
        k = api_keys.c
        stmt = select(api_keys).order_by(k.merchant, k.created_at, k.key_id)
        if merchant is not None:
            stmt = stmt.where(k.merchant == merchant)
        if not include_revoked:
            stmt = stmt.where(k.revoked_at.is_(None))
        async with self.db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [_key(row) for row in rows]

    async def revoke_key(self, key_id: str, *, by: Actor, at: datetime | None = None) -> ApiKey:
        at = at or _now()
        async with self.db.begin() as conn:
            record = await self._revoke(conn, key_id, at)
            await self._audit(
                conn,
                AuditEvent(
                    time=at,
                    actor=by.name,
                    key_id=by.key_id,
                    merchant=record.merchant,
                    action="key.revoke",
                    target=key_id,
                    data={"name": record.name, "role": record.role.value},
                ),
            )
        return record

    async def _revoke(self, conn: AsyncConnection, key_id: str, at: datetime) -> ApiKey:
        k = api_keys.c
        row = (await conn.execute(select(api_keys).where(k.key_id == key_id))).mappings().first()
        if row is None:
            raise KeyNotFound(f"no API key {key_id!r}")
        if row["revoked_at"] is None:
            await conn.execute(update(api_keys).where(k.key_id == key_id).values(revoked_at=at))
        return _key(row).model_copy(update={"revoked_at": row["revoked_at"] or at})

    async def rotate_key(
        self,
        key_id: str,
        *,
        by: Actor,
        grace: timedelta = timedelta(0),
        at: datetime | None = None,
    ) -> CreatedKey:
        """A new key with the old one's name, merchant, role and expiry. The old key stops
        working at once, or after ``grace`` (it then expires) so clients can switch over."""
        at = at or _now()
        k = api_keys.c
        async with self.db.begin() as conn:
            row = (
                (await conn.execute(select(api_keys).where(k.key_id == key_id))).mappings().first()
            )
            if row is None:
                raise KeyNotFound(f"no API key {key_id!r}")
            old = _key(row)
            if not old.usable(at):
                raise KeyNotFound(f"API key {key_id!r} is revoked or expired: create a new one")
            await self._merchant_exists(conn, old.merchant, at)
            if grace <= timedelta(0):
                await conn.execute(update(api_keys).where(k.key_id == key_id).values(revoked_at=at))
            else:
                ends = at + grace
                if old.expires_at is None or ends < old.expires_at:
                    await conn.execute(
                        update(api_keys).where(k.key_id == key_id).values(expires_at=ends)
                    )
            return await self._insert_key(
                conn,
                merchant=old.merchant,
                role=old.role,
                name=old.name,
                by=by,
                expires_at=old.expires_at,
                at=at,
                replaces=key_id,
                action="key.rotate",
            )
