"""Listing: filters, sorts, keyset pages through every row, and cursors that are refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from store.api import OrderStore
from store.errors import InvalidQuery
from store.models import OrderFilters, OrderRow, OrderSort
from tests.store.factories import T0, event, write
from workflows.models import EscrowStatus

S = EscrowStatus
STATUSES = [S.AWAITING_PAYMENT, S.HELD, S.DELIVERED, S.PAID_OUT, S.NEEDS_ATTENTION]
SELLERS = ["0901000001", "0901000002", "0901000003"]
BUYERS = ["0902000001", "0902000002"]
N = 47


def _created(i: int) -> datetime:
    # Groups of three share a creation time, so the orderRef tie-break is exercised.
    return T0 + timedelta(hours=(i // 3) * 7)


def _updated(i: int) -> datetime:
    return T0 + timedelta(days=20) - timedelta(minutes=13 * ((i * 17) % N))


async def _seed(store: OrderStore) -> None:
    for i in range(N):
        ref = f"ord-{(i * 31) % 101:03d}"
        await store.record(
            write(
                ref,
                STATUSES[i % len(STATUSES)],
                [event(1, _created(i), "started", S.CREATING), event(2, _updated(i))],
                created_at=_created(i),
                seller=SELLERS[i % 3],
                buyer=BUYERS[i % 2],
                merchant="shop-b" if i % 10 == 0 else "default",
            )
        )


async def _all_pages(
    store: OrderStore, filters: OrderFilters, sort: OrderSort, limit: int
) -> list[OrderRow]:
    rows: list[OrderRow] = []
    cursor: str | None = None
    for _ in range(N + 2):
        page = await store.list_orders(filters, sort, limit, cursor)
        assert len(page.orders) <= limit
        rows.extend(page.orders)
        cursor = page.next_cursor
        if cursor is None:
            return rows
    raise AssertionError("paging did not end")


def _key(sort: OrderSort, row: OrderRow) -> tuple[datetime, str]:
    return (row.created_at if sort.value.startswith("created") else row.updated_at, row.order_ref)


@pytest.mark.parametrize("sort", list(OrderSort))
async def test_cursor_pages_through_every_row_in_order(store: OrderStore, sort: OrderSort) -> None:
    await _seed(store)
    everything = (await store.list_orders(limit=1000)).orders
    assert len(everything) == N
    rows = await _all_pages(store, OrderFilters(), sort, limit=7)
    assert len(rows) == N and len({r.order_ref for r in rows}) == N
    expected = sorted(everything, key=lambda r: _key(sort, r), reverse=sort.value.endswith("desc"))
    assert [r.order_ref for r in rows] == [r.order_ref for r in expected]


async def test_exact_last_page_has_no_next_cursor(store: OrderStore) -> None:
    for i in range(4):
        await store.record(
            write(f"x-{i}", S.HELD, [event(1, T0)], created_at=T0 + timedelta(hours=i))
        )
    first = await store.list_orders(limit=2)
    assert first.next_cursor is not None
    second = await store.list_orders(limit=2, cursor=first.next_cursor)
    assert [o.order_ref for o in second.orders] == ["x-1", "x-0"]
    assert second.next_cursor is None
    assert (await store.list_orders(limit=4)).next_cursor is None


async def test_filters(store: OrderStore) -> None:
    await _seed(store)
    everything = (await store.list_orders(limit=1000)).orders

    async def refs(filters: OrderFilters) -> set[str]:
        return {r.order_ref for r in await _all_pages(store, filters, OrderSort.UPDATED_ASC, 5)}

    assert await refs(OrderFilters(status=[S.HELD])) == {
        r.order_ref for r in everything if r.status is S.HELD
    }
    assert await refs(OrderFilters(status=[S.HELD, S.PAID_OUT])) == {
        r.order_ref for r in everything if r.status in (S.HELD, S.PAID_OUT)
    }
    assert await refs(OrderFilters(seller_id=SELLERS[1], buyer_id=BUYERS[0])) == {
        r.order_ref for r in everything if r.seller_id == SELLERS[1] and r.buyer_id == BUYERS[0]
    }
    assert await refs(OrderFilters(merchant="shop-b")) == {
        r.order_ref for r in everything if r.merchant == "shop-b"
    }
    low, high = T0 + timedelta(days=1), T0 + timedelta(days=3)
    created = {r.order_ref for r in everything if low <= r.created_at < high}
    assert created and await refs(OrderFilters(created_from=low, created_to=high)) == created
    ulow, uhigh = T0 + timedelta(days=19, hours=22), T0 + timedelta(days=19, hours=23)
    updated = {r.order_ref for r in everything if ulow <= r.updated_at < uhigh}
    assert updated and await refs(OrderFilters(updated_from=ulow, updated_to=uhigh)) == updated
    assert await refs(OrderFilters(seller_id="' OR 1=1 --")) == set()
    assert await refs(OrderFilters(status=[S.REFUNDED])) == set()


async def test_a_cursor_from_another_query_is_refused(store: OrderStore) -> None:
    await _seed(store)
    page = await store.list_orders(OrderFilters(status=[S.HELD]), limit=2)
    assert page.next_cursor is not None
    for other_filters, other_sort in (
        (OrderFilters(status=[S.PAID_OUT]), OrderSort.CREATED_DESC),
        (OrderFilters(), OrderSort.CREATED_DESC),
        (OrderFilters(status=[S.HELD]), OrderSort.CREATED_ASC),
    ):
        with pytest.raises(InvalidQuery) as err:
            await store.list_orders(other_filters, other_sort, 2, page.next_cursor)
        assert err.value.code == "cursor_mismatch"
    # The same query with another page size accepts it.
    more = await store.list_orders(OrderFilters(status=[S.HELD]), limit=5, cursor=page.next_cursor)
    assert {o.order_ref for o in more.orders}.isdisjoint({o.order_ref for o in page.orders})


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not a cursor!",
        "%%%%",
        _b64(b"not json"),
        _b64(b"[1,2,3]"),
        _b64(json.dumps({"v": 2, "q": "x", "t": "2026-11-02T00:00:00+00:00", "r": "a"}).encode()),
        _b64(json.dumps({"v": 1, "q": "x", "t": "yesterday", "r": "a"}).encode()),
        _b64(json.dumps({"v": 1, "q": "x", "t": "2026-11-02T00:00:00", "r": "a"}).encode()),
        _b64(json.dumps({"v": 1, "q": "x", "t": "2026-11-02T00:00:00+00:00", "r": ""}).encode()),
        "A" * 600,
    ],
)
async def test_a_malformed_cursor_is_refused(store: OrderStore, bad: str) -> None:
    with pytest.raises(InvalidQuery) as err:
        await store.list_orders(cursor=bad)
    assert err.value.code == "invalid_cursor"


@pytest.mark.parametrize("limit", [0, -1, 1001])
async def test_a_bad_limit_is_refused(store: OrderStore, limit: int) -> None:
    with pytest.raises(InvalidQuery) as err:
        await store.list_orders(limit=limit)
    assert err.value.code == "invalid_limit"


def test_filters_from_query_strings() -> None:
    f = OrderFilters.from_query(
        status="HELD,PAID_OUT",
        seller_id="0901000001",
        created_from="2026-11-01",
        created_to="2026-11-30",
        updated_from="2026-11-02T10:00:00+07:00",
    )
    assert f.status == [S.HELD, S.PAID_OUT]
    # Days are Vietnam days; "to" includes the whole day.
    assert f.created_from == datetime(2026, 10, 31, 17, 0, tzinfo=UTC)
    assert f.created_to == datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    assert f.updated_from == datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
    assert OrderFilters.from_query(status=["HELD"]).status == [S.HELD]
    assert OrderFilters.from_query().model_dump(exclude_none=True) == {}


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"status": "HELD,SHIPPED"}, "invalid_filter"),
        ({"status": "held; DROP TABLE orders"}, "invalid_filter"),
        ({"created_from": "2026-13-01"}, "invalid_date"),
        ({"created_from": "yesterday"}, "invalid_date"),
        ({"updated_to": "2026-11-02T10:00:00"}, "invalid_date"),
        ({"created_from": "2026-11-02", "created_to": "2026-11-01"}, "invalid_range"),
        (
            {"updated_from": "2026-11-02T10:00:00Z", "updated_to": "2026-11-02T10:00:00Z"},
            "invalid_range",
        ),
    ],
)
def test_bad_query_strings_are_refused_with_a_stable_code(
    kwargs: dict[str, str], code: str
) -> None:
    with pytest.raises(InvalidQuery) as err:
        OrderFilters.from_query(**kwargs)
    assert err.value.code == code
