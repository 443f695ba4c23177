"""The store's side of the reconciliation (store/reconcile.py), on both engines: each query finds
exactly the orders its check must look at, with their money events."""

from __future__ import annotations

from datetime import timedelta

from store import reconcile as q
from store.api import OrderStore
from store.models import FindingKind, MoneyKind
from tests.store.factories import T0, event, write
from workflows.models import EscrowStatus

S = EscrowStatus
M = MoneyKind


def D(ref: str) -> tuple[str, str]:  # an order of the default merchant
    return ("default", ref)


async def seed(store: OrderStore) -> None:
    t = T0
    await store.record(
        write(
            "clean-paid",
            S.PAID_OUT,
            [
                event(1, t, status=S.HELD, money=M.HELD),
                event(
                    2, t + timedelta(days=1), status=S.PAID_OUT, money=M.PAID_OUT, amount=150_000
                ),
            ],
            paid_out_at=t + timedelta(days=1),
            cotpay_order_id=1000001,
        )
    )
    await store.record(
        write(
            "both",
            S.REFUNDED,
            [
                event(1, t, status=S.HELD, money=M.HELD),
                event(2, t + timedelta(hours=1), status=S.PAID_OUT, money=M.PAID_OUT),
                event(3, t + timedelta(hours=2), status=S.REFUNDED, money=M.REFUNDED),
            ],
            cotpay_order_id=1000002,
        )
    )
    await store.record(
        write(
            "row-says-paid",
            S.PAID_OUT,
            [
                event(1, t, status=S.RETURN_REQUESTED, money=M.REFUNDED),
            ],
            cotpay_order_id=1000003,
        )
    )
    await store.record(
        write(
            "doubt",
            S.NEEDS_ATTENTION,
            [
                event(1, t, status=S.PAYING_OUT, money=M.PAYOUT_IN_DOUBT),
            ],
            cotpay_order_id=1000004,
        )
    )
    await store.record(
        write("expired", S.EXPIRED, [event(1, t, status=S.EXPIRED)], cotpay_order_id=1000005)
    )
    await store.append_event(
        "expired",
        time=t + timedelta(days=9),
        kind="ipn_after_close",
        money=M.IPN_AFTER_CLOSE,
        transaction_id="tx-late",
        amount=150_000,
        data={"status": "HOLDING"},
    )


async def test_candidates_of_each_check(store: OrderStore) -> None:
    await seed(store)
    db = store.db
    assert await q.paid_and_refunded_refs(db) == [D("both"), D("row-says-paid")]
    assert await q.stranded_refs(db) == [D("doubt"), D("expired")]
    assert await q.settled_refs(db, T0) == [D("both"), D("clean-paid"), D("row-says-paid")]
    assert await q.settled_refs(db, T0 + timedelta(hours=3)) == [D("clean-paid")]


async def test_money_of_by_ref_and_by_cotpay_id(store: OrderStore) -> None:
    await seed(store)
    by_ref = await q.money_of(store.db, refs=[D("expired"), D("both"), D("nope")])
    assert [o.order_ref for o in by_ref] == ["both", "expired"]
    both, expired = by_ref
    assert [e.money for e in both.events] == [M.HELD, M.PAID_OUT, M.REFUNDED]
    assert both.paid and both.refunded
    late = expired.events[-1]
    assert (late.money, late.seq, late.transaction_id) == (M.IPN_AFTER_CLOSE, 2, "tx-late")
    assert late.data == {"status": "HOLDING"} and late.time.tzinfo is not None
    by_id = await q.money_of(store.db, cotpay_ids=[1000001, 1000004, 9])
    assert [(o.order_ref, o.cotpay_order_id) for o in by_id] == [
        ("clean-paid", 1000001),
        ("doubt", 1000004),
    ]
    assert by_id[0].paid_out_at is not None and by_id[0].paid and not by_id[0].refunded


async def test_finding_state_and_open_counts(store: OrderStore) -> None:
    K = FindingKind
    first = await store.open_finding(K.IPN_AFTER_CLOSE, order_ref="a", key="a:tx-1")
    await store.open_finding(K.IPN_AFTER_CLOSE, order_ref="b", key="b:tx-2")
    await store.open_finding(K.PAST_DEADLINE, order_ref="a")
    await store.close_finding(first.id, "ops")
    state = await q.finding_state(store.db, K.IPN_AFTER_CLOSE, ["a:tx-1", "b:tx-2", "c:tx-3"])
    assert state == {"a:tx-1": False, "b:tx-2": True}
    await store.open_finding(K.IPN_AFTER_CLOSE, order_ref="a", key="a:tx-1")  # seen again
    assert (await q.finding_state(store.db, K.IPN_AFTER_CLOSE, ["a:tx-1"])) == {"a:tx-1": True}
    assert await q.open_counts(store.db) == {"ipn_after_close": 2, "past_deadline": 1}
