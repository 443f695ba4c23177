"""Cotpay's payout window: no payout before 16:00 (Asia/Ho_Chi_Minh) on T+1.

This is Cotpay's rule, so it lives on the protocol floor: the workflow schedules payouts with it
and the sandbox enforces it (code 11100), from the same code (docs/cotpay-protocol.md).

ASSUMPTION (Cotpay does not say whether T+1 counts calendar or working days; code 11100 tells
when a payout was too early). Three rules, chosen per order and fixed into its input:

* ``t1-1600`` (default): 16:00 Vietnam time on the calendar day after the Vietnam date on which
  the money was held.
* ``business-t1-1600``: 16:00 Vietnam time on the next Vietnamese working day after that date
  (weekends and public holidays skipped, see ``cotpay/vn_calendar.py``).
* ``immediate``: the hold itself (demos, real-time tests).

Never before ``delivered_at + inspection_period``. Pure functions over aware datetimes: UTC out.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from cotpay.vn_calendar import is_working_day

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
PAYOUT_TIME = time(16, 0)


class PayoutRule(StrEnum):
    """Which T+1 an order counts with; fixed into the order's input when it starts."""

    T1_1600 = "t1-1600"
    BUSINESS_T1_1600 = "business-t1-1600"
    IMMEDIATE = "immediate"


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def _counts(day: date, rule: PayoutRule) -> bool:
    return rule is not PayoutRule.BUSINESS_T1_1600 or is_working_day(day)


def _slot(day: date) -> datetime:
    return datetime.combine(day, PAYOUT_TIME, VN_TZ).astimezone(UTC)


def earliest_payout(
    held_at: datetime,
    *,
    rule: PayoutRule | str = PayoutRule.T1_1600,
    delivered_at: datetime | None = None,
    inspection_period: timedelta = timedelta(0),
) -> datetime:
    """The first instant at which Cotpay allows paying out money held at ``held_at``."""
    _require_aware("held_at", held_at)
    rule = PayoutRule(rule)
    if inspection_period < timedelta(0):
        raise ValueError("inspection_period must not be negative")
    if rule is PayoutRule.IMMEDIATE:
        result = held_at.astimezone(UTC)
    else:
        day = held_at.astimezone(VN_TZ).date() + timedelta(days=1)
        while not _counts(day, rule):
            day += timedelta(days=1)
        result = _slot(day)
    if delivered_at is not None:
        _require_aware("delivered_at", delivered_at)
        result = max(result, (delivered_at + inspection_period).astimezone(UTC))
    return result


def next_payout_slot(now: datetime, *, rule: PayoutRule | str = PayoutRule.T1_1600) -> datetime:
    """After a 11100 answer: the next instant >= ``now`` at which a payout may be allowed."""
    _require_aware("now", now)
    rule = PayoutRule(rule)
    if rule is PayoutRule.IMMEDIATE:
        return now.astimezone(UTC)
    day = now.astimezone(VN_TZ).date()
    while _slot(day) < now or not _counts(day, rule):
        day += timedelta(days=1)
    return _slot(day)


def payout_allowed(
    now: datetime, held_at: datetime, *, rule: PayoutRule | str = PayoutRule.T1_1600
) -> bool:
    _require_aware("now", now)
    return now >= earliest_payout(held_at, rule=rule)
