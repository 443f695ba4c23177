"""The chaos harness's invariant checker finds each kind of violation it claims to find."""

from __future__ import annotations

from typing import Any

import pytest

from bench.chaos_check import Observed, check
from bench.chaos_driver import PATHS, assign_paths
from bench.chaos_faults import KILLED, draw_faults, kill_plan


def _view(ref: str, status: str, id_order: int | None, **extra: Any) -> dict[str, Any]:
    return {
        "orderRef": ref,
        "status": status,
        "cotpayOrderId": id_order,
        "amount": 50_000,
        "waitingFor": "",
        **extra,
    }


def _entry(id_order: int, *, holds: int = 0, payouts: int = 0, refunds: int = 0) -> dict[str, Any]:
    return {
        "idOrder": id_order,
        "amount": 50_000,
        "status": "X",
        "holds": [{}] * holds,
        "payouts": [{}] * payouts,
        "refunds": [{}] * refunds,
    }


def _rules(observed: list[Observed], entries: list[dict[str, Any]]) -> list[str]:
    return sorted(v["rule"] for v in check(observed, {"orders": entries}).violations)


def test_consistent_orders_pass() -> None:
    observed = [
        Observed("a", "happy", True, _view("a", "PAID_OUT", 1)),
        Observed("b", "dispute_approved", True, _view("b", "REFUNDED", 2)),
        Observed("c", "cancel", True, _view("c", "CANCELLED", 3)),
        Observed("d", "expiry", True, _view("d", "EXPIRED", 4)),
    ]
    entries = [
        _entry(1, holds=1, payouts=1),
        _entry(2, holds=1, refunds=1),
        _entry(3),
        _entry(4),
    ]
    verdict = check(observed, {"orders": entries})
    assert verdict.violations == [] and verdict.lost == [] and verdict.unsettled == []


@pytest.mark.parametrize(
    ("status", "entry", "expected"),
    [
        (
            "PAID_OUT",
            _entry(1, holds=1, payouts=2),
            ["paid_out_twice", "paid_out_without_one_payout"],
        ),
        (
            "REFUNDED",
            _entry(1, holds=1, refunds=2),
            ["refunded_twice", "refunded_without_one_refund"],
        ),
        (
            "PAID_OUT",
            _entry(1, holds=1, payouts=1, refunds=1),
            ["paid_out_and_refunded", "paid_out_without_one_payout", "refund_not_reflected"],
        ),
        ("PAID_OUT", _entry(1, holds=1), ["paid_out_without_one_payout"]),
        ("REFUNDED", _entry(1, holds=1), ["refunded_without_one_refund"]),
        ("HELD", _entry(1, holds=1, payouts=1), ["payout_not_reflected"]),
        ("EXPIRED", _entry(1, holds=1), ["held_money_forgotten"]),
        ("PAID_OUT", _entry(1, payouts=1), ["money_moved_without_hold"]),
        ("AWAITING_PAYMENT", _entry(1, holds=2), ["held_twice"]),
    ],
)
def test_each_money_rule(status: str, entry: dict[str, Any], expected: list[str]) -> None:
    observed = [Observed("a", "happy", True, _view("a", status, 1, waitingFor="w"))]
    assert _rules(observed, [entry]) == sorted(expected)


def test_attention_needs_a_reason_and_waits_need_a_line() -> None:
    observed = [
        Observed("a", "happy", True, _view("a", "NEEDS_ATTENTION", 1, attention={"reason": " "})),
        Observed("b", "happy", True, _view("b", "HELD", 2, waitingFor="")),
        Observed("c", "happy", True, _view("c", "HELD", 3, waitingFor="Money held")),
    ]
    verdict = check(observed, {"orders": [_entry(1), _entry(2, holds=1), _entry(3, holds=1)]})
    assert sorted(v["rule"] for v in verdict.violations) == [
        "attention_without_reason",
        "stuck_without_reason",
    ]
    assert [u["orderRef"] for u in verdict.unsettled] == ["b", "c"]
    assert [n["orderRef"] for n in verdict.needs_operator] == ["a"]


def test_lost_orders_and_cotpay_orders_nobody_owns() -> None:
    observed = [
        Observed("a", "happy", True, None),  # answered at start, gone at the end
        Observed("b", "happy", False, None),  # never answered, never created: not lost
        Observed("c", "happy", True, _view("c", "PAID_OUT", 7)),
        Observed("d", "happy", True, _view("d", "PAID_OUT", 7)),
    ]
    entries = [_entry(7, holds=1, payouts=1), _entry(8), _entry(9, holds=1)]
    verdict = check(observed, {"orders": entries})
    assert [o["orderRef"] for o in verdict.lost] == ["a"]
    assert sorted(v["rule"] for v in verdict.violations) == [
        "cotpay_order_shared",
        "cotpay_order_shared",
        "money_on_order_not_ours",
    ]
    assert verdict.orphans == [{"cotpayOrderId": 8, "status": "X"}]


def test_amount_and_unknown_cotpay_order() -> None:
    observed = [
        Observed("a", "happy", True, _view("a", "CANCELLED", 1)),
        Observed("b", "happy", True, _view("b", "CANCELLED", 2)),
    ]
    entry = _entry(1)
    entry["amount"] = 60_000
    assert _rules(observed, [entry]) == ["amount_mismatch", "cotpay_order_unknown_to_cotpay"]


def test_plans_are_reproducible_from_the_seed() -> None:
    import random

    def plan(seed: int) -> tuple[Any, ...]:
        return (
            assign_paths(20, PATHS, random.Random(f"{seed}:paths")),
            kill_plan(random.Random(f"{seed}:kills"), 2, 5.0),
            draw_faults(random.Random(f"{seed}:faults")),
        )

    assert plan(3) == plan(3)
    assert plan(3) != plan(4)
    paths, kills, _ = plan(3)
    assert set(paths) == set(PATHS)
    assert sorted(name for name, _, _ in kills) == sorted(KILLED * 2)
