"""The money invariants ``bench.chaos`` checks at the end of a run (docs/reliability.md).

Pure functions over what the run saw: each order's final view from ``GET /v1/orders/{ref}``
(our side) and ``GET /sandbox/ledger`` (Cotpay's side). A violation is a dict with the order,
the rule broken and the evidence.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

FINAL = frozenset({"PAID_OUT", "REFUNDED", "EXPIRED", "CANCELLED", "FAILED"})
NO_MONEY_FINAL = frozenset({"EXPIRED", "CANCELLED", "FAILED"})


@dataclass
class Observed:
    """One order as the harness saw it at the end."""

    order_ref: str
    path: str
    started: bool  # a start request was answered 200/201
    view: dict[str, Any] | None  # None: not found (404) or no answer


@dataclass
class Verdict:
    violations: list[dict[str, Any]]
    lost: list[dict[str, Any]]
    unsettled: list[dict[str, Any]]
    needs_operator: list[dict[str, Any]]
    orphans: list[dict[str, Any]]  # Cotpay orders none of ours names, no money on them


def _violation(
    rule: str, order_ref: str | None, id_order: int | None, **detail: Any
) -> dict[str, Any]:
    return {"rule": rule, "orderRef": order_ref, "cotpayOrderId": id_order, **detail}


def _ledger_rules(entry: dict[str, Any], ref: str | None) -> list[dict[str, Any]]:
    id_order = entry["idOrder"]
    holds, payouts, refunds = (len(entry.get(k) or []) for k in ("holds", "payouts", "refunds"))
    found: list[dict[str, Any]] = []
    if holds > 1:
        found.append(_violation("held_twice", ref, id_order, holds=holds))
    if payouts > 1:
        found.append(_violation("paid_out_twice", ref, id_order, payouts=payouts))
    if refunds > 1:
        found.append(_violation("refunded_twice", ref, id_order, refunds=refunds))
    if payouts and refunds:
        found.append(_violation("paid_out_and_refunded", ref, id_order))
    if (payouts or refunds) and not holds:
        found.append(_violation("money_moved_without_hold", ref, id_order))
    return found


def _order_rules(view: dict[str, Any], entry: dict[str, Any] | None) -> list[dict[str, Any]]:
    ref, status, id_order = view["orderRef"], view["status"], view.get("cotpayOrderId")
    holds, payouts, refunds = (
        len((entry or {}).get(k) or []) for k in ("holds", "payouts", "refunds")
    )
    found: list[dict[str, Any]] = []

    def add(rule: str, **detail: Any) -> None:
        found.append(_violation(rule, ref, id_order, status=status, **detail))

    if status == "PAID_OUT" and (payouts != 1 or refunds):
        add("paid_out_without_one_payout", payouts=payouts, refunds=refunds)
    if status == "REFUNDED" and (refunds != 1 or payouts):
        add("refunded_without_one_refund", payouts=payouts, refunds=refunds)
    if payouts and status != "PAID_OUT":
        add("payout_not_reflected")
    if refunds and status != "REFUNDED":
        add("refund_not_reflected")
    if status in NO_MONEY_FINAL and holds and not (payouts or refunds):
        add("held_money_forgotten", holds=holds)
    if (
        status == "NEEDS_ATTENTION"
        and not ((view.get("attention") or {}).get("reason") or "").strip()
    ):
        add("attention_without_reason", attention=view.get("attention"))
    if entry is not None and entry.get("amount") != view.get("amount"):
        add("amount_mismatch", ledger=entry.get("amount"), ours=view.get("amount"))
    return found


def check(observed: list[Observed], ledger: dict[str, Any]) -> Verdict:
    """Every rule of docs/reliability.md over our views and Cotpay's ledger."""
    entries = {int(e["idOrder"]): e for e in ledger.get("orders", [])}
    ours: dict[int, str] = {}
    violations: list[dict[str, Any]] = []
    lost: list[dict[str, Any]] = []
    unsettled: list[dict[str, Any]] = []
    needs_operator: list[dict[str, Any]] = []
    orphans: list[dict[str, Any]] = []
    owners = Counter(
        o.view.get("cotpayOrderId") for o in observed if o.view and o.view.get("cotpayOrderId")
    )
    for o in observed:
        if o.view is None:
            if o.started:
                lost.append({"orderRef": o.order_ref, "path": o.path})
            continue
        view = o.view
        id_order = view.get("cotpayOrderId")
        if id_order is not None:
            ours[int(id_order)] = o.order_ref
            if owners[id_order] > 1:
                violations.append(_violation("cotpay_order_shared", o.order_ref, id_order))
        entry = entries.get(int(id_order)) if id_order is not None else None
        if id_order is not None and entry is None:
            violations.append(_violation("cotpay_order_unknown_to_cotpay", o.order_ref, id_order))
        violations += _order_rules(view, entry)
        status = view["status"]
        attention = view.get("attention") or {}
        if status == "NEEDS_ATTENTION":
            needs_operator.append(
                {
                    "orderRef": o.order_ref,
                    "path": o.path,
                    "reason": attention.get("reason"),
                    "code": attention.get("code"),
                    "step": attention.get("step"),
                }
            )
        elif status not in FINAL:
            reason = (view.get("waitingFor") or "").strip()
            unsettled.append(
                {"orderRef": o.order_ref, "path": o.path, "status": status, "waitingFor": reason}
            )
            if not reason:
                violations.append(
                    _violation("stuck_without_reason", o.order_ref, id_order, status=status)
                )
    for id_order, entry in entries.items():
        violations += _ledger_rules(entry, ours.get(id_order))
        if id_order in ours:
            continue
        if entry.get("holds") or entry.get("payouts") or entry.get("refunds"):
            violations.append(
                _violation("money_on_order_not_ours", None, id_order, status=entry.get("status"))
            )
        else:
            orphans.append({"cotpayOrderId": id_order, "status": entry.get("status")})
    return Verdict(violations, lost, unsettled, needs_operator, orphans)
