"""The store's commands, on both engines: ``db upgrade|current``, ``orders list|export``,
``ops report`` (docs/cli.md). Each runs ``cotpay-escrow`` in a thread, as from a shell."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from starter.cli import main
from store.api import OrderStore
from store.export import BOM, CSV_COLUMNS
from store.migrate import head_revision
from store.models import MoneyKind, OrderWrite, vn_today
from tests.store.conftest import Databases
from tests.store.factories import T0, event, full_view, write
from workflows.models import EscrowStatus

S = EscrowStatus
VIETNAMESE = "Nón lá Huế: quà tặng cho bà ngoại"


def url_of(store: OrderStore) -> str:
    return store.db.engine.url.render_as_string(hide_password=False)


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def seeded(store: OrderStore) -> list[str]:
    refs = [f"cli-{i}" for i in range(5)]
    for i, ref in enumerate(refs):
        await store.record(
            write(
                ref,
                S.HELD if i % 2 else S.AWAITING_PAYMENT,
                [event(1, T0 + timedelta(minutes=i))],
                created_at=T0 + timedelta(minutes=i),
                description=VIETNAMESE,
            )
        )
    view = full_view("cli-money")
    money = {"ipn": MoneyKind.HELD}
    await store.record(
        OrderWrite.from_view(
            view, created_at=T0 - timedelta(days=1), money=lambda e: money.get(e.kind)
        )
    )
    return refs


async def test_db_current_and_upgrade(
    databases: Databases, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str((await databases.new()).render_as_string(hide_password=False))
    code, out, _ = await cli(capsys, "db", "current", "--database-url", url, "--json")
    assert code == 0
    assert json.loads(out) | {"database": None} == {
        "database": None,
        "revision": None,
        "head": head_revision(),
        "upToDate": False,
    }
    code, out, err = await cli(capsys, "db", "upgrade", "--database-url", url)
    assert code == 0, err
    assert f"at revision {head_revision()}" in out
    assert "password" not in out
    code, out, _ = await cli(capsys, "db", "upgrade", "--database-url", url, "--json")
    assert code == 0 and json.loads(out)["upToDate"] is True, "a second upgrade changes nothing"
    code, out, _ = await cli(capsys, "db", "current", "--database-url", url)
    assert code == 0 and "up to date" in out


async def test_orders_list_filters_and_pages(
    store: OrderStore, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = await seeded(store)
    url = url_of(store)
    seen: list[str] = []
    cursor: list[str] = []
    for _ in range(5):
        code, out, err = await cli(
            capsys, "orders", "list", "--database-url", url, "--limit", "2", "--json", *cursor
        )
        assert code == 0, err
        page = json.loads(out)
        seen += [row["orderRef"] for row in page["orders"]]
        if page["nextCursor"] is None:
            break
        cursor = ["--cursor", page["nextCursor"]]
    assert seen == [*reversed(refs), "cli-money"]

    code, out, _ = await cli(
        capsys, "orders", "list", "--database-url", url, "--status", "HELD,NEEDS_ATTENTION"
    )
    assert code == 0
    assert "cli-1" in out and "cli-3" in out and "cli-money" in out and "cli-0" not in out
    assert "seller wallet not linked" in out, "the attention reason has a column"

    code, out, _ = await cli(
        capsys, "orders", "list", "--database-url", url, "--limit", "1", "--sort", "created_asc"
    )
    assert code == 0 and "cli-money" in out and "More: the same command with --cursor" in out

    code, out, _ = await cli(
        capsys, "orders", "list", "--database-url", url, "--created-from", "soon", "--json"
    )
    assert code == 1 and json.loads(out)["error"] == "invalid_date"
    code, _, err = await cli(capsys, "orders", "list", "--database-url", url, "--cursor", "bogus")
    assert code == 1 and "invalid_cursor" in err


async def test_orders_export_to_a_file_and_to_stdout(
    store: OrderStore, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    refs = await seeded(store)
    url = url_of(store)
    target = tmp_path / "november.csv"
    code, out, err = await cli(
        capsys,
        "orders",
        "export",
        "--database-url",
        url,
        "--from",
        "2026-11-02",
        "--to",
        "2026-11-02",
        "-o",
        str(target),
        "--json",
    )
    assert code == 0, err
    summary: dict[str, Any] = json.loads(out)
    assert summary["orders"] == len(refs) and summary["file"] == str(target)
    data = target.read_bytes()
    assert summary["bytes"] == len(data)
    assert data.startswith(BOM)
    rows = list(csv.reader(io.StringIO(data[len(BOM) :].decode("utf-8"), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [row[0] for row in rows[1:]] == refs, "the day before is not in the range"
    assert rows[1][CSV_COLUMNS.index("description")] == VIETNAMESE
    assert not list(tmp_path.glob("*.part"))

    code, out, _ = await cli(
        capsys,
        "orders",
        "export",
        "--database-url",
        url,
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-02",
    )
    assert code == 0
    assert out.lstrip("\ufeff").startswith("orderRef,merchant,status")
    assert VIETNAMESE in out and "cli-money" in out
    assert not out.endswith("\n\n"), "nothing but the CSV on stdout"

    code, _, err = await cli(
        capsys,
        "orders",
        "export",
        "--database-url",
        url,
        "--from",
        "2025-01-01",
        "--to",
        "2026-11-02",
    )
    assert code == 1 and "range_too_large" in err
    code, _, err = await cli(
        capsys,
        "orders",
        "export",
        "--database-url",
        url,
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-02",
        "--json",
    )
    assert code == 2 and "-o FILE" in err


async def test_ops_report_now_and_for_a_day(
    store: OrderStore, capsys: pytest.CaptureFixture[str]
) -> None:
    await seeded(store)
    url = url_of(store)
    code, out, err = await cli(capsys, "ops", "report", "--database-url", url, "--json")
    assert code == 0, err
    report = json.loads(out)
    states = {line["state"]: line for line in report["states"]}
    assert report["currency"] == "VND"
    assert states["awaiting_payment"]["count"] == 5  # every seeded order's only event
    assert states["held"] == {"state": "held", "count": 1, "amount": 150_000}

    code, out, _ = await cli(capsys, "ops", "report", "--database-url", url, "--day", "2026-11-02")
    assert code == 0
    assert "Money as of the end of 2026-11-02" in out and "Money events on 2026-11-02" in out

    future = (vn_today() + timedelta(days=2)).isoformat()
    code, out, _ = await cli(
        capsys, "ops", "report", "--database-url", url, "--day", future, "--json"
    )
    assert code == 1 and json.loads(out)["error"] == "invalid_date"


async def test_a_missing_sqlite_store_is_reported_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nothing" / "escrow.db"
    url = f"sqlite+aiosqlite:///{path}"
    for argv in (("orders", "list"), ("ops", "report")):
        code, _, err = await cli(capsys, *argv, "--database-url", url)
        assert code == 1 and "store_unavailable" in err and "db upgrade" in err
    assert not path.exists()
    code, _, err = await cli(capsys, "orders", "list", "--database-url", "mysql://x/y")
    assert code == 1 and "config_error" in err
