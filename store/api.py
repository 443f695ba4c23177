"""``OrderStore``: the one object a worker, the gateway or the CLI holds (docs/store.md).

It owns the engine (open once per process, ``close`` at shutdown) and offers every operation
of ``store.orders``, ``store.export``, ``store.reports`` and ``store.findings`` as a method.
Errors: ``store.errors.InvalidQuery`` (422), ``StoreUnavailable`` (503).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy.engine import URL

from store import export, findings, migrate, orders, reports
from store.db import Database
from store.errors import SchemaBehind
from store.models import (
    Finding,
    FindingFilter,
    FindingKind,
    MoneyKind,
    MoneyReport,
    OrderFilters,
    OrderPage,
    OrderRow,
    OrderSort,
    OrderWrite,
    StoreEvent,
    WriteResult,
)
from store.settings import StoreSettings
from workflows.models import DEFAULT_MERCHANT, OrderView


class OrderStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def open(cls, url: str | URL | None = None, settings: StoreSettings | None = None) -> Self:
        """The store at ``url``, else at ``settings`` (default: from the environment). Opening
        does not connect: the first operation does."""
        settings = settings or StoreSettings()
        if url is not None:
            settings = settings.model_copy(update={"database_url": str(url)})
        return cls(Database.from_settings(settings))

    async def upgrade(self) -> str | None:
        """Create or upgrade the schema of this store's database (``store.migrate``)."""
        return await migrate.upgrade(self.db.engine.url)

    async def ensure_schema(self) -> str | None:
        """At service start. SQLite (the embedded default): create or upgrade the schema here,
        so ``make run`` needs no step. PostgreSQL: migrations are a deployment step
        (``cotpay-escrow db upgrade``); raise ``SchemaBehind`` if it was not run. Returns the
        revision the database is at."""
        if self.dialect == "sqlite":
            return await self.upgrade()
        revision = await migrate.current(self.db.engine.url)
        if migrate.is_behind(revision):
            raise SchemaBehind(
                f"order store schema at {revision or 'nothing'}, this release needs "
                f"{migrate.head_revision()}: run cotpay-escrow db upgrade"
            )
        return revision

    async def ping(self) -> None:
        """For ``/healthz``: ``StoreUnavailable`` unless the database answers with its schema."""
        await self.db.ping()

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def dialect(self) -> str:
        return self.db.dialect

    # --- orders ------------------------------------------------------------------------------

    async def record(self, write: OrderWrite) -> WriteResult:
        return await orders.record(self.db, write)

    async def append_event(
        self,
        order_ref: str,
        *,
        merchant: str = DEFAULT_MERCHANT,
        time: datetime,
        kind: str,
        detail: str = "",
        data: dict[str, Any] | None = None,
        money: MoneyKind | None = None,
        cotpay_order_id: int | None = None,
        transaction_id: str | None = None,
        amount: int | None = None,
    ) -> StoreEvent | None:
        return await orders.append_event(
            self.db,
            order_ref,
            merchant=merchant,
            time=time,
            kind=kind,
            detail=detail,
            data=data,
            money=money,
            cotpay_order_id=cotpay_order_id,
            transaction_id=transaction_id,
            amount=amount,
        )

    # An order is (merchant, orderRef): the merchant is ``default`` unless given.

    async def get_order(self, order_ref: str, merchant: str = DEFAULT_MERCHANT) -> OrderView | None:
        return await orders.get_order(self.db, order_ref, merchant)

    async def get_row(self, order_ref: str, merchant: str = DEFAULT_MERCHANT) -> OrderRow | None:
        return await orders.get_row(self.db, order_ref, merchant)

    async def events(
        self, order_ref: str, merchant: str = DEFAULT_MERCHANT
    ) -> list[StoreEvent] | None:
        return await orders.events(self.db, order_ref, merchant)

    async def list_orders(
        self,
        filters: OrderFilters | None = None,
        sort: OrderSort = OrderSort.CREATED_DESC,
        limit: int = orders.DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> OrderPage:
        return await orders.list_orders(self.db, filters, sort, limit, cursor)

    def export_orders_csv(
        self, start: date | datetime, end: date | datetime, *, merchant: str | None = None
    ) -> AsyncIterator[bytes]:
        return export.export_orders_csv(self.db, start, end, merchant=merchant)

    # --- money -------------------------------------------------------------------------------

    async def money_report(
        self, at: date | datetime | None = None, *, merchant: str | None = None
    ) -> MoneyReport:
        return await reports.money_report(self.db, at, merchant=merchant)

    # --- findings ----------------------------------------------------------------------------

    async def open_finding(
        self,
        kind: FindingKind,
        *,
        merchant: str = DEFAULT_MERCHANT,
        order_ref: str | None = None,
        key: str | None = None,
        detail: str = "",
        data: dict[str, Any] | None = None,
    ) -> Finding:
        return await findings.open_finding(
            self.db,
            kind,
            merchant=merchant,
            order_ref=order_ref,
            key=key,
            detail=detail,
            data=data,
        )

    async def list_findings(self, where: FindingFilter | None = None) -> list[Finding]:
        return await findings.list_findings(self.db, where)

    async def close_finding(self, finding_id: int, closed_by: str, note: str = "") -> Finding:
        return await findings.close_finding(self.db, finding_id, closed_by, note)
