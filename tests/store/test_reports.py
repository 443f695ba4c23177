"""The money report on a seeded set of orders: now, at the end of past days, and the day's
money flows; days are Vietnam days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from store.api import OrderStore
from store.errors import InvalidQuery
from store.models import VN, MoneyKind, MoneyReport, MoneyState, StoreEvent, vn_today
from tests.store.factories import write
from workflows.models import EscrowStatus

S = EscrowStatus
M = MoneyKind
DAY1 = vn_today() - timedelta(days=10)
DAY2, DAY3, DAY4 = (DAY1 + timedelta(days=n) for n in (1, 2, 3))


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=VN).astimezone(UTC)


def ev(
    seq: int, when: datetime, status: S | None, money: M | None = None, amount: int | None = None
) -> StoreEvent:
    kind = "ipn" if money in (M.HELD, M.PAID_OUT, M.REFUNDED) else "status"
    return StoreEvent(seq=seq, time=when, kind=kind, status=status, money=money, amount=amount)


# orderRef -> (amount, events); the status of the order row is its last event's.
ORDERS: dict[str, tuple[int, list[StoreEvent]]] = {
    "A": (100_000, [ev(1, at(DAY1, 9), S.AWAITING_PAYMENT)]),
    "B": (
        200_000,
        [
            ev(1, at(DAY1, 9), S.AWAITING_PAYMENT),
            ev(2, at(DAY1, 10), S.AWAITING_PAYMENT, M.HELD, 200_000),
            ev(3, at(DAY1, 10, 1), S.HELD),
            ev(4, at(DAY2, 12), S.DELIVERED),
            ev(5, at(DAY3, 16), S.PAYING_OUT),
            ev(6, at(DAY3, 16, 5), S.PAYING_OUT, M.PAID_OUT, 200_000),
            ev(7, at(DAY3, 16, 6), S.PAID_OUT),
        ],
    ),
    "C": (
        300_000,
        [
            ev(1, at(DAY1, 9), S.AWAITING_PAYMENT),
            ev(2, at(DAY1, 11), S.AWAITING_PAYMENT, M.HELD, 300_000),
            ev(3, at(DAY1, 11, 1), S.HELD),
            ev(4, at(DAY2, 16), S.PAYING_OUT),
            ev(5, at(DAY2, 16, 10), S.PAYING_OUT, M.PAYOUT_IN_DOUBT),
            ev(6, at(DAY3, 8), S.PAYING_OUT, M.PAYOUT_FAILED),
            ev(7, at(DAY3, 8, 1), S.NEEDS_ATTENTION),
        ],
    ),
    "D": (
        400_000,
        [
            ev(1, at(DAY1, 9), S.AWAITING_PAYMENT),
            ev(2, at(DAY1, 20), S.EXPIRED),
            ev(3, at(DAY2, 9), S.EXPIRED, M.IPN_AFTER_CLOSE, 400_000),
        ],
    ),
    "E": (
        500_000,
        [
            ev(1, at(DAY1, 9), S.AWAITING_PAYMENT),
            ev(2, at(DAY1, 12), S.AWAITING_PAYMENT, M.HELD, 500_000),
            ev(3, at(DAY1, 12, 1), S.HELD),
            ev(4, at(DAY2, 15), S.RETURN_REQUESTED),
            ev(5, at(DAY3, 10), S.RETURN_REQUESTED, M.REFUNDED, 500_000),
            ev(6, at(DAY3, 10, 1), S.REFUNDED),
        ],
    ),
    "F": (
        50_000,
        [ev(1, at(DAY1, 9), S.AWAITING_PAYMENT), ev(2, at(DAY1, 9, 30), S.CANCELLED)],
    ),
    # Created late on DAY3; money held at the first instant of DAY4 (Vietnam time).
    "G": (
        700_000,
        [
            ev(1, at(DAY3, 23, 30), S.AWAITING_PAYMENT),
            ev(2, at(DAY4, 0), S.AWAITING_PAYMENT, M.HELD, 700_000),
            ev(3, at(DAY4, 0, 1), S.HELD),
        ],
    ),
    "H": (
        600_000,
        [
            ev(1, at(DAY1, 9), S.AWAITING_PAYMENT),
            ev(2, at(DAY1, 13), S.AWAITING_PAYMENT, M.HELD, 600_000),
            ev(3, at(DAY1, 13, 1), S.HELD),
            ev(4, at(DAY3, 16), S.PAYING_OUT),
        ],
    ),
}


async def _seed(store: OrderStore) -> None:
    for ref, (amount, events) in ORDERS.items():
        last = events[-1]
        assert last.status is not None
        await store.record(
            write(ref, last.status, events, amount=amount, created_at=events[0].time)
        )


def _states(report: MoneyReport) -> dict[str, tuple[int, int]]:
    assert [line.state for line in report.states] == list(MoneyState)
    return {line.state.value: (line.count, line.amount) for line in report.states if line.count}


def _flows(report: MoneyReport) -> dict[str, tuple[int, int]]:
    assert report.flows is not None
    return {f.kind.value: (f.count, f.amount) for f in report.flows if f.count}


async def test_money_report_now_and_for_past_days(store: OrderStore) -> None:
    await _seed(store)

    now = await store.money_report()
    assert now.day is None and now.flows is None and now.currency == "VND"
    assert _states(now) == {
        "awaiting_payment": (1, 100_000),  # A
        "held": (2, 1_000_000),  # C (needs attention, money held), G
        "paying_out": (1, 600_000),  # H
        "paid_out": (1, 200_000),  # B
        "refunded": (1, 500_000),  # E
        "stranded": (1, 400_000),  # D
    }

    day1 = await store.money_report(DAY1)
    assert day1.day == DAY1 and day1.as_of == at(DAY2, 0)
    assert _states(day1) == {
        "awaiting_payment": (1, 100_000),  # A
        "held": (4, 1_600_000),  # B, C, E, H
    }
    assert _flows(day1) == {"held": (4, 1_600_000)}

    day2 = await store.money_report(DAY2)
    assert _states(day2) == {
        "awaiting_payment": (1, 100_000),
        "held": (2, 1_100_000),  # E (return requested), H
        "delivered": (1, 200_000),  # B
        "in_doubt": (1, 300_000),  # C
        "stranded": (1, 400_000),  # D
    }
    assert _flows(day2) == {"payout_in_doubt": (1, 300_000), "ipn_after_close": (1, 400_000)}

    day3 = await store.money_report(DAY3)
    assert _states(day3) == {
        "awaiting_payment": (2, 800_000),  # A, G (created 23:30)
        "held": (1, 300_000),  # C
        "paying_out": (1, 600_000),  # H
        "paid_out": (1, 200_000),  # B
        "refunded": (1, 500_000),  # E
        "stranded": (1, 400_000),  # D
    }
    assert _flows(day3) == {
        "paid_out": (1, 200_000),
        "payout_failed": (1, 300_000),
        "refunded": (1, 500_000),
    }
    # The report of a past day does not change when orders move on.
    assert await store.money_report(DAY1) == day1

    # An aware instant: just before G's money was held.
    instant = await store.money_report(at(DAY4, 0))
    assert _states(instant) == _states(day3)


async def test_merchant_report_and_an_empty_store(store: OrderStore) -> None:
    empty = await store.money_report(DAY1)
    assert _states(empty) == {} and _flows(empty) == {}
    await _seed(store)
    assert _states(await store.money_report(merchant="shop-b")) == {}


async def test_bad_report_dates(store: OrderStore) -> None:
    with pytest.raises(InvalidQuery) as err:
        await store.money_report(vn_today() + timedelta(days=1))
    assert err.value.code == "invalid_date"
    with pytest.raises(InvalidQuery) as err:
        await store.money_report(datetime(2026, 1, 1))
    assert err.value.code == "invalid_date"
    assert (await store.money_report(vn_today())).day == vn_today()
