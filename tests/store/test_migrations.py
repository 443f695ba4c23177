"""Migrations on both engines: from empty, from the previous revision, concurrently, and the
migrated schema equals ``store.schema``."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from store import migrate
from store.api import OrderStore
from store.errors import SchemaBehind
from store.models import FindingKind, OrderWrite
from store.schema import metadata
from tests.store.conftest import Databases
from tests.store.factories import T0, full_view


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
    assert await migrate.upgrade(url) == migrate.head_revision() == "0003"
    assert await migrate.current(url) == "0003"
    assert {
        "orders",
        "order_events",
        "findings",
        "webhook_endpoints",
        "webhook_events",
        "webhook_deliveries",
    } <= await _tables(url)
    assert await _schema_diff(url) == []
    # Upgrading again is a no-op.
    assert await migrate.upgrade(url) == "0003"


async def test_upgrade_from_previous_revision_keeps_data(databases: Databases) -> None:
    url = await databases.new()
    assert await migrate.upgrade(url, "0001") == "0001"
    assert await _tables(url) >= {"orders", "order_events"}
    assert "findings" not in await _tables(url)
    async with OrderStore.open(url) as old:
        result = await old.record(OrderWrite.from_view(full_view("up-1"), created_at=T0))
        assert result.events_inserted == 6

    assert await migrate.upgrade(url) == "0003"
    assert await _schema_diff(url) == []
    async with OrderStore.open(url) as new:
        got = await new.get_order("up-1")
        assert got is not None
        assert got == full_view("up-1")
        finding = await new.open_finding(FindingKind.PAST_DEADLINE, order_ref="up-1")
        assert finding.closed_at is None
        page = await new.list_orders()
        assert [o.order_ref for o in page.orders] == ["up-1"]


async def test_downgrade_to_base_and_back(databases: Databases) -> None:
    url = await databases.new()
    await migrate.upgrade(url)
    assert await migrate.downgrade(url, "0001") == "0001"
    assert "findings" not in await _tables(url)
    assert "webhook_deliveries" not in await _tables(url)
    assert await migrate.downgrade(url, "base") is None
    assert not ({"orders", "order_events"} & await _tables(url))
    assert await migrate.upgrade(url) == "0003"


async def test_concurrent_upgrades_apply_each_revision_once(databases: Databases) -> None:
    url = await databases.new()
    results = await asyncio.gather(*(migrate.upgrade(url) for _ in range(3)))
    assert results == ["0003"] * 3
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
    assert "at revision 0003" in done.stdout
    current = subprocess.run(
        [sys.executable, "-m", "store", "--url", url, "current"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert current.stdout.strip() == "0003"


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
            assert await fresh.ensure_schema() == "0003"
        else:
            with pytest.raises(SchemaBehind, match="db upgrade"):
                await fresh.ensure_schema()
            await migrate.upgrade(url, "0001")
            with pytest.raises(SchemaBehind):
                await fresh.ensure_schema()
            await migrate.upgrade(url)
            assert await fresh.ensure_schema() == "0003"
        await fresh.ping()
    assert migrate.is_behind(None) and migrate.is_behind("0001") and migrate.is_behind("0002")
    assert not migrate.is_behind("0003") and not migrate.is_behind("9999_from_a_later_release")
