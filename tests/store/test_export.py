"""CSV export: UTF-8 with BOM, Vietnamese text intact, formulas defused, bounded ranges, and
100,000 rows streamed in flat memory."""

from __future__ import annotations

import csv
import io
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from store.api import OrderStore
from store.errors import InvalidQuery
from store.export import BOM, CSV_COLUMNS, MAX_EXPORT_RANGE, export_orders_csv
from store.schema import orders
from tests.store.factories import T0, event, write
from workflows.models import EscrowStatus

S = EscrowStatus
VIETNAMESE = "Nón lá Huế: quà tặng cho bà ngoại, giao trước Tết (đã thanh toán) ạ"


async def _csv_text(store: OrderStore, start: Any, end: Any) -> str:
    data = b"".join([chunk async for chunk in store.export_orders_csv(start, end)])
    assert data.startswith(BOM)
    return data[len(BOM) :].decode("utf-8")


async def test_vietnamese_text_round_trips_with_a_bom(store: OrderStore) -> None:
    await store.record(
        write("vn-1", S.HELD, [event(1, T0)], description=VIETNAMESE, waiting_for="Chờ giao hàng")
    )
    await store.record(
        write(
            "vn-2",
            S.PAID_OUT,
            [event(1, T0)],
            created_at=T0 + timedelta(hours=1),
            description="=1+2",
        )
    )
    # Outside the range: created the day after.
    await store.record(write("vn-3", S.HELD, [event(1, T0)], created_at=T0 + timedelta(days=1)))
    text = await _csv_text(store, date(2026, 11, 2), date(2026, 11, 2))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [r["orderRef"] for r in rows] == ["vn-1", "vn-2"]
    assert rows[0]["description"] == VIETNAMESE
    assert rows[0]["waitingFor"] == "Chờ giao hàng"
    assert rows[0]["createdAt"] == "2026-11-02T10:00:00+07:00"
    assert rows[0]["amount"] == "150000" and rows[0]["status"] == "HELD"
    assert rows[1]["description"] == "'=1+2"  # a spreadsheet formula is defused
    # What Excel and Python's "utf-8-sig" do: the BOM says UTF-8 and is not part of the text.
    data = b"".join(
        [c async for c in store.export_orders_csv(date(2026, 11, 2), date(2026, 11, 2))]
    )
    assert data.decode("utf-8-sig") == text


async def test_an_empty_range_is_a_header(store: OrderStore) -> None:
    text = await _csv_text(store, date(2020, 1, 1), date(2020, 1, 31))
    assert text == ",".join(CSV_COLUMNS) + "\r\n"


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        (date(2026, 1, 1), date(2027, 1, 5), "range_too_large"),
        (date(2026, 2, 1), date(2026, 1, 1), "invalid_range"),
        (datetime(2026, 1, 1), datetime(2026, 1, 2), "invalid_date"),
        (
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime(2026, 1, 1, tzinfo=UTC) + MAX_EXPORT_RANGE + timedelta(seconds=1),
            "range_too_large",
        ),
    ],
)
def test_bad_ranges_are_refused_before_reading(start: Any, end: Any, code: str) -> None:
    from store.db import Database

    db = Database.from_url("sqlite+aiosqlite:///:memory:")
    with pytest.raises(InvalidQuery) as err:
        export_orders_csv(db, start, end)
    assert err.value.code == code


async def _bulk_orders(store: OrderStore, count: int, start: datetime) -> None:
    """``count`` orders created one second apart from ``start``, inserted in batches."""
    batch = 5000
    async with store.db.begin() as conn:
        for first in range(0, count, batch):
            rows = []
            for i in range(first, min(first + batch, count)):
                when = start + timedelta(seconds=i)
                rows.append(
                    {
                        "order_ref": f"bulk-{i:06d}",
                        "merchant": "default",
                        "workflow_id": f"escrow-bulk-{i:06d}",
                        "status": "PAID_OUT" if i % 2 else "HELD",
                        "cotpay_order_id": 100_000 + i,
                        "seller_id": "0901000001",
                        "buyer_id": "0902000002",
                        "amount": 10_000 + i,
                        "description": f"{VIETNAMESE} #{i}",
                        "pay_method": "VIETQR",
                        "payout_rule": "t1-1600",
                        "waiting_for": "",
                        "created_at": when,
                        "updated_at": when,
                        "last_seq": 0,
                        "revision": 0,
                    }
                )
            await conn.execute(orders.insert(), rows)


async def _export_peak(store: OrderStore, start: date, end: date) -> tuple[int, int, int]:
    """(rows, bytes, peak traced bytes) of one export, read chunk by chunk."""
    rows = size = 0
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        async for chunk in store.export_orders_csv(start, end):
            size += len(chunk)
            rows += chunk.count(b"\r\n")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return rows - 1, size, peak


# 100,000 rows on SQLite; 20,000 on PostgreSQL, where inserting them costs more time than
# it teaches (the export code path is the same).
ROWS = {"sqlite": 100_000, "postgresql": 20_000}
PEAK_BOUND = 6 * 1024 * 1024


async def test_export_streams_in_bounded_memory(store: OrderStore) -> None:
    count = ROWS[store.dialect]
    started = time.monotonic()
    await _bulk_orders(store, count, datetime(2026, 6, 1, tzinfo=UTC))
    inserted = time.monotonic()
    rows, size, peak = await _export_peak(store, date(2026, 5, 1), date(2026, 7, 31))
    print(
        f"{store.dialect}: {count} rows inserted in {inserted - started:.1f}s, "
        f"exported {size / 1e6:.1f} MB in {time.monotonic() - inserted:.1f}s, "
        f"peak {peak / 1e6:.2f} MB"
    )
    assert rows == count
    assert peak < PEAK_BOUND
    if count >= 100_000:
        assert size > 3 * PEAK_BOUND  # the data is far larger than what was ever held
