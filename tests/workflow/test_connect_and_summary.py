"""The UI texts of ``workflows.summary`` (the connection tests are in tests/runtime)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.workflow.helpers import order_input
from workflows.summary import details_line, summary_for


def test_summary_and_details_carry_no_personal_data() -> None:
    order = order_input(order_ref="shop-42", amount=1_250_000)
    summary = summary_for(order)
    assert summary.startswith("Escrow shop-42: 1,250,000 VND")
    assert order.buyer_id not in summary
    line = details_line(
        "Waiting for buyer payment",
        datetime(2026, 11, 25, 7, 0, tzinfo=UTC),
        datetime(2026, 11, 26, 7, 0, tzinfo=UTC),
    )
    assert line == (
        "Waiting for buyer payment since 2026-11-25 14:00 ICT (until 2026-11-26 14:00 ICT)"
    )
