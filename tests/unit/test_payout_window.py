from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cotpay.payout_window import (
    VN_TZ,
    PayoutRule,
    earliest_payout,
    next_payout_slot,
    payout_allowed,
)
from cotpay.vn_calendar import is_working_day
from workflows import models


def vn(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=VN_TZ)


@pytest.mark.parametrize(
    ("held", "rule", "expected"),
    [
        # 23:30 VN is still the 25th in Vietnam (16:30 UTC): payout from the 26th at 16:00.
        (vn(2026, 11, 25, 23, 30), "t1-1600", vn(2026, 11, 26, 16)),
        # 00:30 VN on the 26th is 17:30 UTC on the 25th: the Vietnam date counts, so the 27th.
        (vn(2026, 11, 26, 0, 30), "t1-1600", vn(2026, 11, 27, 16)),
        (vn(2026, 11, 30, 12), "t1-1600", vn(2026, 12, 1, 16)),  # month boundary
        (vn(2026, 12, 31, 23, 59), "t1-1600", vn(2027, 1, 1, 16)),  # year boundary
        (vn(2026, 12, 31, 23, 59), "business-t1-1600", vn(2027, 1, 4, 16)),  # 1 Jan, weekend
        (vn(2026, 11, 27, 9), "business-t1-1600", vn(2026, 11, 30, 16)),  # Friday -> Monday
        (vn(2026, 11, 28, 9), "business-t1-1600", vn(2026, 11, 30, 16)),  # Saturday -> Monday
        # Tết 2027: 4-10 February are public holidays.
        (vn(2027, 2, 3, 10), "t1-1600", vn(2027, 2, 4, 16)),
        (vn(2027, 2, 3, 10), "business-t1-1600", vn(2027, 2, 11, 16)),
        (vn(2026, 11, 25, 10), "immediate", vn(2026, 11, 25, 10)),
    ],
)
def test_examples(held: datetime, rule: str, expected: datetime) -> None:
    result = earliest_payout(held, rule=rule)
    assert result == expected
    assert result.tzinfo is UTC


def test_delivery_and_inspection_push_it_later() -> None:
    held = vn(2026, 11, 25, 10)
    delivered = vn(2026, 11, 26, 15)
    assert earliest_payout(held, delivered_at=delivered) == vn(2026, 11, 26, 16)
    assert earliest_payout(
        held, delivered_at=delivered, inspection_period=timedelta(hours=3)
    ) == vn(2026, 11, 26, 18)
    assert earliest_payout(
        held, rule="immediate", delivered_at=delivered, inspection_period=timedelta(days=2)
    ) == vn(2026, 11, 28, 15)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        earliest_payout(datetime(2026, 11, 25, 10))
    with pytest.raises(ValueError, match="timezone-aware"):
        next_payout_slot(datetime(2026, 11, 25, 10))


def test_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError):
        earliest_payout(vn(2026, 11, 25, 10), rule="t+2")


def test_next_payout_slot() -> None:
    assert next_payout_slot(vn(2026, 11, 26, 15)) == vn(2026, 11, 26, 16)
    assert next_payout_slot(vn(2026, 11, 26, 16)) == vn(2026, 11, 26, 16)
    assert next_payout_slot(vn(2026, 11, 26, 16, 0, 1)) == vn(2026, 11, 27, 16)
    assert next_payout_slot(vn(2026, 11, 28, 10), rule="business-t1-1600") == vn(2026, 11, 30, 16)
    now = vn(2026, 11, 26, 16, 30)
    assert next_payout_slot(now, rule="immediate") == now


def test_payout_allowed_around_1600_on_t1() -> None:
    held = vn(2026, 11, 25, 23, 30)
    assert not payout_allowed(vn(2026, 11, 26, 15, 59, 59), held)
    assert payout_allowed(vn(2026, 11, 26, 16), held)
    assert payout_allowed(held, held, rule="immediate")


instants = st.datetimes(
    min_value=datetime(2024, 1, 1),
    max_value=datetime(2032, 12, 31),
    timezones=st.just(UTC),
)
rules = st.sampled_from(list(PayoutRule))
periods = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30))


@given(held=instants, rule=st.sampled_from([PayoutRule.T1_1600, PayoutRule.BUSINESS_T1_1600]))
def test_never_before_1600_of_a_later_vietnam_day(held: datetime, rule: PayoutRule) -> None:
    result = earliest_payout(held, rule=rule).astimezone(VN_TZ)
    assert result.date() > held.astimezone(VN_TZ).date()
    assert result.time() == time(16)
    if rule is PayoutRule.BUSINESS_T1_1600:
        assert is_working_day(result.date())
        day = held.astimezone(VN_TZ).date() + timedelta(days=1)
        while day < result.date():
            assert not is_working_day(day)
            day += timedelta(days=1)
    else:
        assert result.date() == held.astimezone(VN_TZ).date() + timedelta(days=1)


@given(held=instants, rule=rules, delay=periods, inspection=periods)
def test_never_before_delivery_plus_inspection(
    held: datetime, rule: PayoutRule, delay: timedelta, inspection: timedelta
) -> None:
    delivered = held + delay
    result = earliest_payout(held, rule=rule, delivered_at=delivered, inspection_period=inspection)
    assert result >= delivered + inspection
    assert result >= earliest_payout(held, rule=rule)


@given(a=instants, b=instants, rule=rules)
def test_monotone_in_held_at(a: datetime, b: datetime, rule: PayoutRule) -> None:
    first, second = sorted((a, b))
    assert earliest_payout(first, rule=rule) <= earliest_payout(second, rule=rule)


@given(now=instants, rule=rules)
def test_next_slot_is_not_in_the_past_and_is_a_slot(now: datetime, rule: PayoutRule) -> None:
    slot = next_payout_slot(now, rule=rule)
    assert slot >= now
    if rule is not PayoutRule.IMMEDIATE:
        local = slot.astimezone(VN_TZ)
        assert local.time() == time(16)
        assert slot - now <= timedelta(days=20)


def test_tet_2027_is_not_working() -> None:
    for day in range(4, 11):
        assert not is_working_day(date(2027, 2, day))
    assert is_working_day(date(2027, 2, 11))


def test_the_order_models_re_export_cotpays_payout_rule() -> None:
    assert models.PayoutRule is PayoutRule
    assert models.OrderInput.model_fields["payout_rule"].default is PayoutRule.T1_1600
