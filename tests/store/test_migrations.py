"""Migrations on both engines: from empty, from the previous revision, concurrently, and the
migrated schema equals ``store.schema``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Connection, MetaData, Table, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from store import migrate
from store.api import OrderStore
from store.errors import SchemaBehind
from store.models import FindingKind, OrderWrite
from store.schema import metadata
from tests.store.conftest import Databases
from tests.store.factories import T0, full_view, record_before_0005
from webhooks import repo

HEAD = "0005"


def _diff(conn: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata))


async def _schema_diff(url: object) -> list[object]:
    engine = create_async_engine(url)  # type: ignore[arg-type]
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_diff)
    finally:
        await engine.dispose()


async def _tables(url: object) -> set[str]:
    engine = create_async_engine(url)  # type: ignore[arg-type]
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_from_empty_to_head(databases: Databases) -> None:
    url = await databases.new()
    assert await migrate.current(url) is None
    assert await migrate.upgrade(url) == migrate.head_revision() == HEAD
    assert await migrate.current(url) == HEAD
    assert {
        "orders",
        "order_events",
        "findings",
        "webhook_endpoints",
        "webhook_events",
        "webhook_deliveries",
    } <= await _tables(url)
    assert {"merchants", "api_keys", "audit_events"} <= await _tables(url)
    assert await _schema_diff(url) == []
    # Upgrading again is a no-op.
    assert await migrate.upgrade(url) == HEAD


async def test_upgrade_from_previous_revision_keeps_data(databases: Databases) -> None:
    url = await databases.new()
    assert await migrate.upgrade(url, "0001") == "0001"
    assert await _tables(url) >= {"orders", "order_events"}
    assert "findings" not in await _tables(url)
    await record_before_0005(url, OrderWrite.from_view(full_view("up-1"), created_at=T0))

    assert await migrate.upgrade(url) == HEAD
    assert await _schema_diff(url) == []
    async with OrderStore.open(url) as new:
        got = await new.get_order("up-1")
        assert got is not None
        assert got == full_view("up-1")
        finding = await new.open_finding(FindingKind.PAST_DEADLINE, order_ref="up-1")
        assert finding.closed_at is None
        page = await new.list_orders()
        assert [o.order_ref for o in page.orders] == ["up-1"]


async def test_upgrade_from_0003_adds_access_tables_and_keeps_orders(databases: Databases) -> None:
    from store.access import AccessStore, Actor
    from store.access_models import Role

    url = await databases.new()
    assert await migrate.upgrade(url, "0003") == "0003"
    assert "api_keys" not in await _tables(url)
    await record_before_0005(url, OrderWrite.from_view(full_view("up-2"), created_at=T0))
    assert await migrate.upgrade(url) == HEAD
    assert await _schema_diff(url) == []
    async with OrderStore.open(url) as new:
        assert await new.get_order("up-2") == full_view("up-2")
        access = AccessStore(new.db)
        created = await access.create_key(
            merchant="default", role=Role.viewer, name="after-upgrade", by=Actor("test")
        )
        assert await access.authenticate(created.key) is not None
    assert await migrate.downgrade(url, "0003") == "0003"
    assert "api_keys" not in await _tables(url)
    assert await migrate.current(url) == "0003"
    assert {"orders", "webhook_endpoints"} <= await _tables(url)


async def test_downgrade_to_base_and_back(databases: Databases) -> None:
    url = await databases.new()
    await migrate.upgrade(url)
    assert await migrate.downgrade(url, "0001") == "0001"
    assert "findings" not in await _tables(url)
    assert "webhook_deliveries" not in await _tables(url)
    assert await migrate.downgrade(url, "base") is None
    assert not ({"orders", "order_events"} & await _tables(url))
    assert await migrate.upgrade(url) == HEAD


async def test_concurrent_upgrades_apply_each_revision_once(databases: Databases) -> None:
    url = await databases.new()
    results = await asyncio.gather(*(migrate.upgrade(url) for _ in range(3)))
    assert results == [HEAD] * 3
    assert await _schema_diff(url) == []


async def test_store_on_an_unmigrated_database_is_unavailable(databases: Databases) -> None:
    from store.errors import StoreUnavailable

    url = await databases.new()
    async with OrderStore.open(url) as empty:
        try:
            await empty.ping()
        except StoreUnavailable:
            pass
        else:
            raise AssertionError("ping on an empty database must fail")
        await empty.upgrade()
        await empty.ping()


def test_python_m_store_upgrade(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "store", "--url", url, "upgrade"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"at revision {HEAD}" in done.stdout
    current = subprocess.run(
        [sys.executable, "-m", "store", "--url", url, "current"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert current.stdout.strip() == HEAD


def test_python_m_store_reports_an_unreachable_database_without_its_password() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "store",
            "--url",
            "postgresql://escrow:s3cret-pw@127.0.0.1:9/escrow",
            "current",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unavailable" in done.stderr
    assert "s3cret-pw" not in done.stderr + done.stdout


async def test_ensure_schema(databases: Databases) -> None:
    url = await databases.new()
    async with OrderStore.open(url) as fresh:
        if fresh.dialect == "sqlite":
            # The embedded default creates its schema by itself.
            assert await fresh.ensure_schema() == HEAD
        else:
            with pytest.raises(SchemaBehind, match="db upgrade"):
                await fresh.ensure_schema()
            await migrate.upgrade(url, "0001")
            with pytest.raises(SchemaBehind):
                await fresh.ensure_schema()
            await migrate.upgrade(url)
            assert await fresh.ensure_schema() == HEAD
        await fresh.ping()
    assert migrate.is_behind(None) and migrate.is_behind("0001")
    assert migrate.is_behind("0002") and migrate.is_behind("0003") and migrate.is_behind("0004")
    assert not migrate.is_behind(HEAD) and not migrate.is_behind("9999_from_a_later_release")


async def _insert(url: object, table: Table, rows: list[dict[str, Any]]) -> None:
    engine = create_async_engine(url)  # type: ignore[arg-type]
    try:
        async with engine.begin() as conn:
            await conn.execute(table.insert().values(rows))
    finally:
        await engine.dispose()


async def test_upgrade_from_0004_keys_orders_by_merchant_and_keeps_data(
    databases: Databases,
) -> None:
    """0004 -> 0005 with orders, events, a webhook event and delivery and an open finding:
    everything stays, as merchant ``default``'s; then another merchant may use the same
    orderRef (order, events, webhook event and finding of its own)."""
    from store.schema import findings, webhook_deliveries, webhook_endpoints, webhook_events
    from webhooks.events import event_id

    url = await databases.new()
    assert await migrate.upgrade(url, "0004") == "0004"
    await record_before_0005(url, OrderWrite.from_view(full_view("up-5"), created_at=T0))
    endpoint = "we_up5"
    await _insert(
        url,
        webhook_endpoints,
        [
            {
                "id": endpoint,
                "merchant": "default",
                "url": "http://127.0.0.1:9/hooks",
                "event_types": ["*"],
                "enabled": True,
                "secret": "not-used",
                "created_at": T0,
                "updated_at": T0,
            }
        ],
    )
    the_id = event_id("up-5", 3)
    await _insert(
        url,
        webhook_events,
        [
            {
                "id": the_id,
                "order_ref": "up-5",
                "seq": 3,
                "merchant": "default",
                "type": "order.awaiting_payment",
                "created": T0,
                "recorded_at": T0,
                "payload": "{}",
            }
        ],
    )
    await _insert(
        url,
        webhook_deliveries,
        [
            {
                "endpoint_id": endpoint,
                "event_id": the_id,
                "order_ref": "up-5",
                "seq": 3,
                "status": "delivered",
                "attempts": 1,
                "next_attempt_at": T0,
                "expires_at": T0,
                "created_at": T0,
            }
        ],
    )
    old_findings = Table(
        "findings",
        MetaData(),
        *(Column(c.name, c.type) for c in findings.c if c.name != "merchant"),
    )
    await _insert(
        url,
        old_findings,
        [{"kind": "past_deadline", "key": "up-5", "order_ref": "up-5", "opened_at": T0}],
    )

    assert await migrate.current(url) == "0004"
    assert await migrate.upgrade(url) == HEAD == "0005"
    assert await _schema_diff(url) == []
    async with OrderStore.open(url) as new:
        # The old rows are merchant default's, unchanged.
        assert await new.get_order("up-5") == full_view("up-5")
        row = await new.get_row("up-5")
        assert row is not None and row.merchant == "default"
        old_events = await new.events("up-5")
        assert old_events is not None and [e.seq for e in old_events] == [1, 2, 3, 4, 5, 6]
        (finding,) = await new.list_findings()
        assert (finding.merchant, finding.key, finding.closed_at) == ("default", "up-5", None)
        assert (await new.open_finding(FindingKind.PAST_DEADLINE, order_ref="up-5")).id == (
            finding.id
        )
        deliveries, _ = await repo.list_deliveries(new.db, endpoint)
        assert [(d.event_id, d.seq, d.status.value) for d in deliveries] == [
            (the_id, 3, "delivered")
        ]
        # A write of the default merchant repeated after the upgrade adds nothing.
        again = await new.record(OrderWrite.from_view(full_view("up-5"), created_at=T0))
        assert again.events_inserted == 0
        # Another merchant's order with the same orderRef is its own.
        other = OrderWrite.from_view(full_view("up-5"), created_at=T0, merchant="shop-b")
        assert (await new.record(other)).events_inserted == 6
        assert await new.get_row("up-5", "shop-b") is not None
        assert await new.get_order("up-5") == full_view("up-5")
        theirs = await new.open_finding(
            FindingKind.PAST_DEADLINE, merchant="shop-b", order_ref="up-5"
        )
        assert theirs.id != finding.id and theirs.merchant == "shop-b"
        page = await new.list_orders()
        assert sorted((o.merchant, o.order_ref) for o in page.orders) == [
            ("default", "up-5"),
            ("shop-b", "up-5"),
        ]
