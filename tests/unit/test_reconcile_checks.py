"""The reconciliation's checks, pure (workflows/reconcile_checks.py): each anomaly is found, a
consistent order gives nothing, and what is too fresh to judge is left for the next run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cotpay.models import PayMethod
from store.models import FindingKind, MoneyKind, OrderRow
from workflows.models import EscrowStatus, OrderView, PayoutRule, TimelineEvent
from workflows.reconcile_checks import (
    HISTORY_KINDS,
    CheckResult,
    LedgerEntry,
    LedgerOrder,
    MoneyEvent,
    OrderFacts,
    OrderMoney,
    ReconcilePolicy,
    ReconcileReport,
    compare_ledger,
    compare_open_workflow,
    compare_unwatched,
    deadline_of,
    paid_and_refunded,
    past_deadline,
    stranded,
    stranded_key,
)

S = EscrowStatus
K = FindingKind
NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
POLICY = ReconcilePolicy(settle=timedelta(minutes=10))


def view(ref: str = "r1", status: S = S.HELD, *, amount: int = 150_000, **fields: Any) -> OrderView:
    start = fields.pop("start", NOW - timedelta(hours=2))
    return OrderView(
        order_ref=ref,
        workflow_id=f"escrow-{ref}",
        status=status,
        cotpay_order_id=fields.pop("cotpay_order_id", 1000001),
        seller_id="S0000001",
        buyer_id="0912345678",
        amount=amount,
        pay_method=PayMethod.VIETQR,
        payout_rule=PayoutRule.T1_1600,
        timeline=[
            TimelineEvent(time=start, kind="started", status=S.CREATING),
            TimelineEvent(time=start + timedelta(minutes=1), kind="status", status=status),
        ],
        **fields,
    )


def row(ref: str = "r1", status: S = S.HELD, *, amount: int = 150_000, **fields: Any) -> OrderRow:
    data: dict[str, Any] = {
        "order_ref": ref,
        "merchant": "default",
        "workflow_id": f"escrow-{ref}",
        "status": status,
        "cotpay_order_id": 1000001,
        "seller_id": "S0000001",
        "buyer_id": "0912345678",
        "amount": amount,
        "pay_method": PayMethod.VIETQR,
        "payout_rule": PayoutRule.T1_1600,
        "created_at": NOW - timedelta(hours=2),
        "updated_at": NOW - timedelta(hours=2) + timedelta(minutes=1),
        "last_seq": 2,
    }
    data.update(fields)
    return OrderRow.model_validate(data)


def facts(v: OrderView) -> OrderFacts:
    return OrderFacts.from_view(v, v.timeline[0].time)


def kinds(drafts: list[Any]) -> list[FindingKind]:
    return [d.kind for d in drafts]


# --- running workflow vs store row -----------------------------------------------------------


def test_agreeing_workflow_and_row_give_nothing() -> None:
    assert compare_open_workflow(facts(view()), row(), POLICY, NOW) == []


def test_status_mismatch() -> None:
    found = compare_open_workflow(
        facts(view(status=S.HELD)), row(status=S.AWAITING_PAYMENT), POLICY, NOW
    )
    assert kinds(found) == [K.STATUS_MISMATCH]
    assert found[0].key == "r1" and found[0].reopen
    assert found[0].data["storeStatus"] == "AWAITING_PAYMENT"
    assert found[0].data["workflowStatus"] == "HELD"


def test_cotpay_id_mismatch_is_a_status_mismatch() -> None:
    found = compare_open_workflow(facts(view()), row(cotpay_order_id=1000002), POLICY, NOW)
    assert kinds(found) == [K.STATUS_MISMATCH]
    assert found[0].data["fields"] == ["cotpayOrderId"]


def test_amount_mismatch() -> None:
    found = compare_open_workflow(facts(view(amount=150_000)), row(amount=99_000), POLICY, NOW)
    assert kinds(found) == [K.AMOUNT_MISMATCH]
    assert "99,000" in found[0].detail


def test_missing_row_is_a_finding_once_settled_and_after_the_cut_over() -> None:
    old = facts(view(start=NOW - timedelta(days=3)))
    assert kinds(compare_open_workflow(old, None, POLICY, NOW)) == [K.MISSING_IN_STORE]
    young = facts(view(start=NOW - timedelta(minutes=2)))
    assert compare_open_workflow(young, None, POLICY, NOW) == []
    cut_over = POLICY.model_copy(update={"store_since": NOW - timedelta(days=1)})
    assert compare_open_workflow(old, None, cut_over, NOW) == []
    newer = facts(view(start=NOW - timedelta(hours=20)))
    assert kinds(compare_open_workflow(newer, None, cut_over, NOW)) == [K.MISSING_IN_STORE]


def test_an_order_still_being_created_is_not_missing_in_the_store() -> None:
    """Since patch ``lean-history`` an order writes its first row when its Cotpay creation
    calls end; one stuck in CREATING is reported by ``past_deadline``, not as missing."""
    creating = facts(view(status=S.CREATING, start=NOW - timedelta(minutes=40)))
    assert compare_open_workflow(creating, None, POLICY, NOW) == []
    stuck = facts(view(status=S.CREATING, start=NOW - timedelta(days=2)))
    late = past_deadline(stuck, POLICY, NOW)
    assert late is not None and late.kind is K.PAST_DEADLINE


# --- store rows without a running workflow ---------------------------------------------------


def test_an_open_row_without_a_running_workflow_is_unwatched() -> None:
    found = compare_unwatched(row(status=S.HELD), None, POLICY, NOW)
    assert found is not None and found.kind is K.STATUS_MISMATCH
    assert "unknown to Temporal" in found.detail
    terminated = compare_unwatched(row(status=S.HELD), "TERMINATED", POLICY, NOW)
    assert terminated is not None and "TERMINATED" in terminated.detail


@pytest.mark.parametrize(
    ("status", "execution", "age"),
    [
        (S.PAID_OUT, "COMPLETED", timedelta(days=1)),  # closed, and the row says so
        (S.HELD, "RUNNING", timedelta(days=1)),  # visibility lagged: it runs
        (S.HELD, None, timedelta(minutes=1)),  # too fresh to judge
    ],
)
def test_closed_running_or_fresh_rows_are_not_unwatched(
    status: S, execution: str | None, age: timedelta
) -> None:
    r = row(status=status, updated_at=NOW - age)
    assert compare_unwatched(r, execution, POLICY, NOW) is None


# --- deadlines -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "fields", "deadline"),
    [
        (S.CREATING, {}, NOW - timedelta(hours=1)),
        (S.AWAITING_PAYMENT, {}, NOW + timedelta(hours=22)),
        (S.HELD, {"held_at": NOW - timedelta(days=1)}, NOW + timedelta(days=13)),
        (S.DELIVERED, {"payout_not_before": NOW + timedelta(hours=5)}, NOW + timedelta(hours=5)),
        (S.PAYING_OUT, {"payout_not_before": NOW - timedelta(hours=3)}, NOW - timedelta(hours=3)),
        (S.NEEDS_ATTENTION, {}, None),
        (S.PAID_OUT, {}, None),
    ],
)
def test_deadline_of_each_status(
    status: S, fields: dict[str, Any], deadline: datetime | None
) -> None:
    f = OrderFacts.from_row(
        row(
            status=status,
            created_at=NOW - timedelta(hours=2),
            updated_at=NOW - timedelta(hours=5),
            **fields,
        )
    )
    assert deadline_of(f, POLICY) == deadline


def test_past_deadline_only_beyond_the_margin() -> None:
    held = row(status=S.HELD, held_at=NOW - timedelta(days=14, hours=12))
    assert past_deadline(OrderFacts.from_row(held), POLICY, NOW) is None  # within a day's margin
    stuck = row(status=S.HELD, held_at=NOW - timedelta(days=20))
    found = past_deadline(OrderFacts.from_row(stuck), POLICY, NOW)
    assert found is not None and found.kind is K.PAST_DEADLINE
    assert found.data["overdueSeconds"] == int(timedelta(days=6).total_seconds())
    delivered = row(status=S.DELIVERED, payout_not_before=NOW - timedelta(days=3))
    assert kinds([past_deadline(OrderFacts.from_row(delivered), POLICY, NOW)]) == [K.PAST_DEADLINE]


# --- money events ----------------------------------------------------------------------------


def money(
    ref: str, status: S, *events: tuple[MoneyKind, dict[str, Any]], **fields: Any
) -> OrderMoney:
    return OrderMoney(
        order_ref=ref,
        status=status,
        amount=150_000,
        cotpay_order_id=fields.pop("cotpay_order_id", 1000001),
        events=[
            MoneyEvent(seq=i + 3, time=NOW - timedelta(hours=10 - i), money=m, **extra)
            for i, (m, extra) in enumerate(events)
        ],
        **fields,
    )


def test_paid_out_and_refunded() -> None:
    both = money("p", S.REFUNDED, (MoneyKind.PAID_OUT, {}), (MoneyKind.REFUNDED, {}))
    found = paid_and_refunded(both)
    assert found is not None and found.kind is K.PAID_AND_REFUNDED and not found.reopen
    by_status = money("q", S.PAID_OUT, (MoneyKind.REFUNDED, {}))
    assert paid_and_refunded(by_status) is not None
    assert paid_and_refunded(money("ok", S.PAID_OUT, (MoneyKind.PAID_OUT, {}))) is None


def test_every_ipn_after_close_is_stranded_money() -> None:
    order = money(
        "i",
        S.EXPIRED,
        (MoneyKind.IPN_AFTER_CLOSE, {"transaction_id": "tx-9", "amount": 150_000}),
        (MoneyKind.IPN_AFTER_CLOSE, {"data": {"status": "PAYOUT_FAILED"}}),
    )
    found = stranded(order)
    assert kinds(found) == [K.IPN_AFTER_CLOSE, K.IPN_AFTER_CLOSE]
    assert found[0].key == stranded_key("i", "tx-9", order.events[0].time) == "i:tx-9"
    assert found[1].key == f"i:{order.events[1].time.isoformat()}"
    assert "PAYOUT_FAILED" in found[1].detail
    assert all(not d.reopen for d in found)


def test_payout_in_doubt_until_a_definite_answer() -> None:
    doubt = money("d", S.NEEDS_ATTENTION, (MoneyKind.PAYOUT_IN_DOUBT, {}))
    assert [(d.kind, d.key) for d in stranded(doubt)] == [(K.PAYOUT_IN_DOUBT, "d:doubt:3")]
    failed = money(
        "d", S.NEEDS_ATTENTION, (MoneyKind.PAYOUT_IN_DOUBT, {}), (MoneyKind.PAYOUT_FAILED, {})
    )
    assert stranded(failed) == []
    paid = money("d", S.PAID_OUT, (MoneyKind.PAYOUT_IN_DOUBT, {}), (MoneyKind.PAID_OUT, {}))
    assert stranded(paid) == []
    again = money(
        "d",
        S.NEEDS_ATTENTION,
        (MoneyKind.PAYOUT_IN_DOUBT, {}),
        (MoneyKind.PAYOUT_FAILED, {}),
        (MoneyKind.PAYOUT_IN_DOUBT, {}),
    )
    assert [d.key for d in stranded(again)] == ["d:doubt:5"]


# --- Cotpay's ledger -------------------------------------------------------------------------


def entry(hours_ago: float, amount: int = 150_000, tx: str = "tx") -> LedgerEntry:
    return LedgerEntry(transaction_id=tx, amount=amount, at=NOW - timedelta(hours=hours_ago))


def ledger(id_order: int = 1000001, **sides: list[LedgerEntry]) -> LedgerOrder:
    return LedgerOrder(id_order=id_order, amount=150_000, status="X", **sides)


def test_a_consistent_ledger_gives_nothing() -> None:
    paid = money(
        "p",
        S.PAID_OUT,
        (MoneyKind.HELD, {}),
        (MoneyKind.PAID_OUT, {}),
        held_at=NOW - timedelta(hours=9),
    )
    book = [ledger(holds=[entry(9)], payouts=[entry(2)])]
    unpaid = ledger(1000002)  # created, never paid: no money moved
    waiting = money("w", S.AWAITING_PAYMENT, cotpay_order_id=1000002)
    assert compare_ledger([*book, unpaid], [paid, waiting], POLICY, NOW) == []


def test_a_payout_the_store_does_not_know() -> None:
    expired = money("x", S.EXPIRED)
    found = compare_ledger([ledger(holds=[entry(9)], payouts=[entry(2)])], [expired], POLICY, NOW)
    assert sorted(d.key for d in found) == ["x:hold", "x:payout"]
    assert {d.kind for d in found} == {K.LEDGER_MISMATCH}
    assert all(not d.reopen for d in found)


def test_a_store_payout_cotpay_does_not_have() -> None:
    paid = money("p", S.PAID_OUT, (MoneyKind.PAID_OUT, {}), held_at=NOW - timedelta(hours=9))
    found = compare_ledger([ledger(holds=[entry(9)])], [paid], POLICY, NOW)
    assert [(d.kind, d.key) for d in found] == [(K.LEDGER_MISMATCH, "p:payout")]
    gone = money("g", S.PAID_OUT, (MoneyKind.PAID_OUT, {}), cotpay_order_id=1000009)
    found = compare_ledger([ledger(holds=[entry(12)])], [gone], POLICY, NOW)
    assert sorted(d.key for d in found) == ["cotpay:1000001", "g:payout"]


def test_twice_both_and_amounts() -> None:
    paid = money("p", S.PAID_OUT, (MoneyKind.PAID_OUT, {}), held_at=NOW - timedelta(hours=9))
    book = ledger(
        holds=[entry(9)], payouts=[entry(3, tx="a"), entry(2, tx="b")], refunds=[entry(1, 140_000)]
    )
    found = {(d.kind, d.key) for d in compare_ledger([book], [paid], POLICY, NOW)}
    assert (K.LEDGER_MISMATCH, "p:twice") in found
    assert (K.PAID_AND_REFUNDED, "p:ledger") in found
    assert (K.AMOUNT_MISMATCH, "p:ledger") in found
    assert (K.LEDGER_MISMATCH, "p:refund") in found


def test_money_of_an_unknown_cotpay_order() -> None:
    found = compare_ledger([ledger(4242, holds=[entry(5)])], [], POLICY, NOW)
    assert [(d.kind, d.key, d.order_ref) for d in found] == [
        (K.LEDGER_MISMATCH, "cotpay:4242", None)
    ]


def test_fresh_ledger_entries_wait_for_the_next_run() -> None:
    held = money("h", S.HELD, held_at=NOW - timedelta(hours=3))
    book = ledger(holds=[entry(3)], payouts=[entry(0.05)])  # paid out 3 minutes ago
    assert compare_ledger([book], [held], POLICY, NOW) == []
    assert compare_ledger([ledger(4242, holds=[entry(0.05)])], [], POLICY, NOW) == []


# --- the report ------------------------------------------------------------------------------


def test_report_outcome() -> None:
    outcomes: list[str] = []
    report = ReconcileReport(started_at=NOW, checks=[CheckResult(check="orders")])
    outcomes.append(report.outcome)
    report.checks.append(CheckResult(check="money", found={"paid_and_refunded": 1}))
    outcomes.append(report.outcome)
    assert report.found() == {"paid_and_refunded": 1}
    report.checks.append(CheckResult(check="ledger", error="LedgerUnavailable"))
    outcomes.append(report.outcome)
    assert outcomes == ["clean", "findings", "incomplete"]
    again = ReconcileReport.model_validate_json(report.model_dump_json())
    assert again == report


def test_history_kinds_are_the_ones_from_events_and_the_ledger() -> None:
    assert {
        K.IPN_AFTER_CLOSE,
        K.PAYOUT_IN_DOUBT,
        K.PAID_AND_REFUNDED,
        K.LEDGER_MISMATCH,
    } == HISTORY_KINDS
