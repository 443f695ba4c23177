"""Writes are idempotent on (merchant, orderRef, seq) and the order row only moves forward;
reads give back the order view with its timeline; two merchants' orders with the same orderRef
are two orders."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from store import orders as orders_module
from store.api import OrderStore
from store.errors import StoreUnavailable
from store.models import MoneyKind, OrderFilters, OrderRow, OrderWrite, StoreEvent
from tests.store.factories import T0, event, full_view, write
from workflows.models import EscrowStatus, OrderView, TimelineEvent

S = EscrowStatus


async def test_a_write_round_trips_as_the_order_view(store: OrderStore) -> None:
    view = full_view("rt-1")
    result = await store.record(OrderWrite.from_view(view, created_at=T0))
    assert result.order_moved and result.events_inserted == 6
    got = await store.get_order("rt-1")
    assert got == view
    assert got is not None and got.timeline[0].detail == "Bắt đầu"
    assert got.model_dump(mode="json") == view.model_dump(mode="json")

    events = await store.events("rt-1")
    assert events is not None
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    holding = events[3]
    assert (holding.cotpay_order_id, holding.transaction_id, holding.amount) == (
        4242,
        "TX-1",
        150_000,
    )
    assert events[1].cotpay_order_id == 4242 and events[1].transaction_id is None

    row = await store.get_row("rt-1")
    assert row is not None
    assert row.merchant == "default" and row.created_at == T0 and row.last_seq == 6
    assert row.updated_at == view.timeline[-1].time


async def test_the_same_write_twice_changes_nothing(store: OrderStore) -> None:
    w = OrderWrite.from_view(full_view("idem-1"), created_at=T0)
    first = await store.record(w)
    before = await store.get_row("idem-1")
    again = await store.record(w)
    assert first.order_moved and first.events_inserted == 6
    assert not again.order_moved and again.events_inserted == 0
    assert await store.get_row("idem-1") == before
    assert len(await store.events("idem-1") or []) == 6


async def test_an_older_write_after_a_newer_one_changes_nothing(store: OrderStore) -> None:
    t = T0
    e1 = event(1, t, "started", S.CREATING)
    e2 = event(2, t + timedelta(seconds=1), "status", S.AWAITING_PAYMENT)
    e3 = event(3, t + timedelta(minutes=5), "status", S.HELD, money=MoneyKind.HELD, amount=150_000)
    older = write("old-1", S.AWAITING_PAYMENT, [e1, e2])
    newer = write("old-1", S.HELD, [e3], last_seq=3, held_at=t + timedelta(minutes=5))
    assert (await store.record(older)).order_moved
    assert (await store.record(newer)).order_moved
    replay = await store.record(older)
    assert replay == type(replay)(order_moved=False, events_inserted=0)
    row = await store.get_row("old-1")
    assert row is not None
    assert row.status is S.HELD and row.last_seq == 3 and row.held_at == t + timedelta(minutes=5)
    assert row.updated_at == e3.time

    # An older write that also carries an event the store never saw: the event is kept, the
    # newer view stays.
    late = write(
        "old-1", S.AWAITING_PAYMENT, [event(4, t + timedelta(minutes=1), "note")], last_seq=4
    )
    gap_filler = write("old-1", S.AWAITING_PAYMENT, [e2], last_seq=2)
    assert (await store.record(gap_filler)).events_inserted == 0
    assert (await store.record(late)).order_moved  # last_seq 4 > 3: it is newer
    row = await store.get_row("old-1")
    assert row is not None and row.last_seq == 4
    assert row.updated_at == e3.time  # updatedAt never goes back


async def test_an_existing_event_is_never_overwritten(store: OrderStore) -> None:
    first = write("keep-1", S.CREATING, [event(1, T0, "started", S.CREATING, detail="first")])
    other = write("keep-1", S.CREATING, [event(1, T0, "started", S.CREATING, detail="second")])
    await store.record(first)
    assert (await store.record(other)).events_inserted == 0
    events = await store.events("keep-1")
    assert events is not None and events[0].detail == "first"


async def test_a_write_with_old_and_new_events_inserts_only_the_new(store: OrderStore) -> None:
    """The events go in as one executemany with RETURNING: the count is of the rows inserted,
    the existing ones stay as they were, whatever their place among the write's events."""
    e1 = event(1, T0, "started", S.CREATING, detail="first")
    e3 = event(3, T0 + timedelta(seconds=2), "note", None, detail="first")
    assert (await store.record(write("mix-1", S.CREATING, [e1, e3]))).events_inserted == 2
    again = [
        event(1, T0, "started", S.CREATING, detail="second"),
        event(2, T0 + timedelta(seconds=1), "status", S.AWAITING_PAYMENT),
        event(3, T0 + timedelta(seconds=2), "note", None, detail="second"),
        event(4, T0 + timedelta(seconds=3), "note", None),
    ]
    result = await store.record(write("mix-1", S.AWAITING_PAYMENT, again, revision=1))
    assert result.order_moved and result.events_inserted == 2
    events = await store.events("mix-1")
    assert events is not None and [e.seq for e in events] == [1, 2, 3, 4]
    assert [e.detail for e in events if e.seq in (1, 3)] == ["first", "first"]
    # Statements built once per dialect and reused (their compiled form is cached).
    statements = orders_module._record_statements(store.db)
    assert orders_module._record_statements(store.db) is statements


async def test_revision_moves_the_view_without_a_new_event(store: OrderStore) -> None:
    e1 = event(1, T0, "status", S.DELIVERED)
    await store.record(write("rev-1", S.DELIVERED, [e1], waiting_for="a"))
    moved = await store.record(
        write("rev-1", S.DELIVERED, [], last_seq=1, revision=1, waiting_for="b")
    )
    assert moved.order_moved and moved.events_inserted == 0
    stale = await store.record(
        write("rev-1", S.DELIVERED, [], last_seq=1, revision=0, waiting_for="c")
    )
    assert not stale.order_moved
    row = await store.get_row("rev-1")
    assert row is not None and row.waiting_for == "b"


async def test_from_view_writes_only_new_entries(store: OrderStore) -> None:
    view = full_view("inc-1")
    partial = view.model_copy(update={"timeline": view.timeline[:3], "status": S.AWAITING_PAYMENT})
    w1 = OrderWrite.from_view(partial, created_at=T0)
    assert w1.view.timeline == [] and w1.last_seq == 3
    await store.record(w1)

    def money(ev: TimelineEvent) -> MoneyKind | None:
        return (
            MoneyKind.HELD
            if ev.kind == "ipn" and (ev.data or {}).get("status") == "HOLDING"
            else None
        )

    w2 = OrderWrite.from_view(view, created_at=T0, after_seq=3, money=money)
    assert [e.seq for e in w2.events] == [4, 5, 6]
    result = await store.record(w2)
    assert result.order_moved and result.events_inserted == 3
    assert await store.get_order("inc-1") == view
    events = await store.events("inc-1") or []
    assert [e.money for e in events] == [None, None, None, MoneyKind.HELD, None, None]


async def test_merchant_scoping(store: OrderStore) -> None:
    await store.record(write("m-1", S.HELD, [event(1, T0)], merchant="shop-a"))
    assert await store.get_order("m-1", merchant="shop-a") is not None
    assert await store.get_order("m-1", merchant="shop-b") is None
    assert await store.events("m-1", merchant="shop-b") is None
    # Without a merchant: the default merchant's, which has no order m-1.
    assert await store.get_order("m-1") is None
    assert await store.get_row("m-1") is None
    assert await store.get_order("nope") is None
    assert await store.events("nope") is None


async def test_two_merchants_with_the_same_order_ref_are_two_orders(store: OrderStore) -> None:
    """Merchant default and shop-b both write orderRef "same-1": two rows, two event logs,
    each write idempotent on (merchant, orderRef, seq), neither touching the other."""
    a_events = [event(1, T0), event(2, T0 + timedelta(minutes=1), "status", S.HELD)]
    b_events = [
        event(1, T0 + timedelta(seconds=5), detail="b created"),
        event(2, T0 + timedelta(minutes=2), "status", S.CANCELLED, detail="b cancelled"),
        event(3, T0 + timedelta(minutes=3), "note", None, detail="b only"),
    ]
    a = write("same-1", S.HELD, a_events, amount=150_000, seller="0901000001")
    b = write(
        "same-1", S.CANCELLED, b_events, merchant="shop-b", amount=99_000, seller="0903000003"
    )
    assert (await store.record(a)).events_inserted == 2
    assert (await store.record(b)).events_inserted == 3
    # Repeating either write adds nothing, and changes nothing of the other.
    assert (await store.record(b)).events_inserted == 0
    assert (await store.record(a)).events_inserted == 0

    row_a, row_b = await store.get_row("same-1"), await store.get_row("same-1", "shop-b")
    assert row_a is not None and row_b is not None
    assert (row_a.merchant, row_a.status, row_a.amount, row_a.seller_id, row_a.last_seq) == (
        "default",
        S.HELD,
        150_000,
        "0901000001",
        2,
    )
    assert (row_b.merchant, row_b.status, row_b.amount, row_b.seller_id, row_b.last_seq) == (
        "shop-b",
        S.CANCELLED,
        99_000,
        "0903000003",
        3,
    )
    got_a = await store.events("same-1")
    got_b = await store.events("same-1", "shop-b")
    assert got_a == a_events and got_b == b_events
    view_a = await store.get_order("same-1")
    view_b = await store.get_order("same-1", merchant="shop-b")
    assert view_a is not None and view_b is not None
    assert [e.detail for e in view_b.timeline] == ["b created", "b cancelled", "b only"]
    assert len(view_a.timeline) == 2 and view_a.status is S.HELD

    # An append after close goes to the named merchant's order only.
    late = await store.append_event(
        "same-1",
        merchant="shop-b",
        time=T0 + timedelta(days=1),
        kind="ipn_after_close",
        money=MoneyKind.IPN_AFTER_CLOSE,
        transaction_id="TX-B",
        amount=99_000,
    )
    assert late is not None and late.seq == 4
    assert [e.seq for e in await store.events("same-1") or []] == [1, 2]
    assert [e.seq for e in await store.events("same-1", "shop-b") or []] == [1, 2, 3, 4]

    # Listing: both orders, each once, filtered per merchant; pages of one never skip or
    # repeat the other even with the same creation time and orderRef.
    page = await store.list_orders()
    assert sorted((o.merchant, o.order_ref) for o in page.orders) == [
        ("default", "same-1"),
        ("shop-b", "same-1"),
    ]
    first = await store.list_orders(limit=1)
    assert first.next_cursor is not None
    second = await store.list_orders(limit=1, cursor=first.next_cursor)
    assert {first.orders[0].merchant, second.orders[0].merchant} == {"default", "shop-b"}
    assert second.next_cursor is None
    only_b = await store.list_orders(OrderFilters(merchant="shop-b"))
    assert [(o.merchant, o.amount) for o in only_b.orders] == [("shop-b", 99_000)]


async def test_append_event_after_close(store: OrderStore) -> None:
    await store.record(write("late-1", S.EXPIRED, [event(1, T0, "status", S.EXPIRED)]))
    at = T0 + timedelta(days=9)
    first = await store.append_event(
        "late-1",
        time=at,
        kind="ipn_after_close",
        detail="HOLDING after the order closed",
        money=MoneyKind.IPN_AFTER_CLOSE,
        transaction_id="TX-9",
        amount=150_000,
    )
    again = await store.append_event(
        "late-1",
        time=at,
        kind="ipn_after_close",
        money=MoneyKind.IPN_AFTER_CLOSE,
        transaction_id="TX-9",
    )
    assert first is not None and first.seq == 2 and first.status is S.EXPIRED
    assert again == first
    row = await store.get_row("late-1")
    assert row is not None and row.last_seq == 2 and row.updated_at == at
    assert await store.append_event("unknown", time=at, kind="x") is None
    # The workflow's own retried write still changes nothing.
    retried = await store.record(write("late-1", S.EXPIRED, [event(1, T0, "status", S.EXPIRED)]))
    assert not retried.order_moved and retried.events_inserted == 0


def test_write_validation() -> None:
    with pytest.raises(ValidationError, match="above lastSeq"):
        write("v-1", S.HELD, [event(3, T0)], last_seq=2)
    with pytest.raises(ValidationError, match="same seq"):
        write("v-1", S.HELD, [event(1, T0), event(1, T0)])
    with pytest.raises(ValidationError):
        write("bad ref!", S.HELD, [])
    with pytest.raises(ValidationError):
        StoreEvent(seq=1, time=datetime(2026, 1, 1), kind="naive time")
    w = write("v-1", S.HELD, [event(1, T0)])
    with pytest.raises(ValidationError, match="differs"):
        OrderWrite.model_validate({**w.model_dump(), "orderRef": "v-2"})
    # The write travels as camelCase JSON (a Temporal activity payload).
    assert OrderWrite.model_validate_json(w.model_dump_json()) == w
    assert '"lastSeq"' in w.model_dump_json()


def test_order_row_has_every_field_of_the_order_view() -> None:
    view_fields = set(OrderView.model_fields) - {"timeline"}
    assert view_fields <= set(OrderRow.model_fields)


async def test_unreachable_store_is_unavailable(tmp_path) -> None:
    for url in (
        "postgresql+asyncpg://escrow:pw@127.0.0.1:9/escrow",
        f"sqlite+aiosqlite:///{tmp_path}/dir-not-file",
    ):
        if "sqlite" in url:
            (tmp_path / "dir-not-file").mkdir()
        async with OrderStore.open(url) as down:
            with pytest.raises(StoreUnavailable):
                await down.get_order("x")
            with pytest.raises(StoreUnavailable):
                await down.record(write("x-1", S.HELD, [event(1, datetime.now(UTC))]))
            with pytest.raises(StoreUnavailable):
                await down.ping()


async def test_concurrent_writes_in_any_order_end_at_the_newest(store: OrderStore) -> None:
    statuses = [S.CREATING, S.AWAITING_PAYMENT, S.HELD, S.DELIVERED, S.PAYING_OUT, S.PAID_OUT]
    writes = [
        write(
            "race-1",
            status,
            [event(n + 1, T0 + timedelta(minutes=n), "status", status)],
            last_seq=n + 1,
        )
        for n, status in enumerate(statuses)
    ]
    order = [3, 0, 5, 1, 4, 2]
    results = await asyncio.gather(*(store.record(writes[i]) for i in order))
    assert sum(r.events_inserted for r in results) == len(statuses)
    got = await store.get_order("race-1")
    assert got is not None and got.status is S.PAID_OUT
    assert [e.status for e in got.timeline] == statuses
    row = await store.get_row("race-1")
    assert row is not None and row.last_seq == 6 and row.updated_at == T0 + timedelta(minutes=5)
