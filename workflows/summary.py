"""What the Temporal UI shows for an order: the static summary and the current-details line.

Times are shown in Vietnam time (ICT, UTC+7 all year, no daylight saving), built from a fixed
offset so workflow code needs no time-zone database. Only ids and amounts, no personal data.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from workflows.models import OrderInput

ICT = timezone(timedelta(hours=7), "ICT")


def summary_for(order: OrderInput) -> str:
    """The static summary set at start (``start_workflow(..., static_summary=...)``)."""
    return (
        f"Escrow {order.order_ref}: {order.amount:,} VND, seller {order.seller_id},"
        f" {order.pay_method.value}, payout rule {order.payout_rule.value}"
    )


def ict(moment: datetime) -> str:
    return moment.astimezone(ICT).strftime("%Y-%m-%d %H:%M ICT")


def details_line(waiting_for: str, since: datetime, until: datetime | None = None) -> str:
    """E.g. "Waiting for buyer payment since 2026-11-25 14:00 ICT (until 2026-11-26 14:00 ICT)"."""
    line = f"{waiting_for} since {ict(since)}"
    if until is not None:
        line += f" (until {ict(until)})"
    return line
