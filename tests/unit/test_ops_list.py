"""``ops list``: a reason column for stuck and failed orders, and why FAILED is COMPLETED."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starter.cli.ops import COMPLETED_NOTE, Listed, list_json, list_with_reasons, render_list
from starter.cli.output import ui_list_url, with_code
from starter.client import OrderNotFound, OrderSummary
from workflows.models import Attention, EscrowStatus, OrderView

T = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def summary(ref: str, status: str, run_status: str = "RUNNING") -> OrderSummary:
    return OrderSummary(
        order_ref=ref, workflow_id=f"escrow-{ref}", status=status, run_status=run_status,
        amount=150_000, cotpay_order_id=1001, started_at=T,
    )  # fmt: skip


class Orders:
    """Answers ``get_order`` like ``EscrowClient``, counting the queries."""

    def __init__(self, attention: dict[str, Attention]) -> None:
        self.attention = attention
        self.asked: list[str] = []

    async def get_order(self, ref: str) -> OrderView:
        self.asked.append(ref)
        if ref not in self.attention:
            raise OrderNotFound(ref)
        return OrderView(
            order_ref=ref, workflow_id=f"escrow-{ref}", status=EscrowStatus.NEEDS_ATTENTION,
            seller_id="S1", buyer_id="B1", amount=150_000, pay_method="VIETQR",
            payout_rule="t1-1600", attention=self.attention[ref],
        )  # fmt: skip


async def test_reasons_are_read_for_stuck_and_failed_orders_only() -> None:
    wallet = Attention(reason="payment: WalletNotLinked (10900): no wallet", code=10900, since=T)
    seller = Attention(reason="customer_id: SellerNotFound (10200): unknown", code=10200, since=T)
    orders = Orders({"stuck": wallet, "failed": seller})
    rows = [
        summary("stuck", "NEEDS_ATTENTION"),
        summary("failed", "FAILED", "COMPLETED"),
        summary("paid", "PAID_OUT", "COMPLETED"),
        summary("gone", "NEEDS_ATTENTION"),
    ]
    listed = await list_with_reasons(orders, rows)  # type: ignore[arg-type]
    assert sorted(orders.asked) == ["failed", "gone", "stuck"]
    assert [item.reason for item in listed] == [wallet.reason, seller.reason, None, None]

    text = render_list(listed)
    header, *lines = text.split("\n\n")[0].splitlines()
    assert header.split() == [
        "ORDER", "REF", "STATUS", "WORKFLOW", "AMOUNT", "VND", "COTPAY", "ID", "PAYOUT",
        "NOT", "BEFORE", "STARTED", "REASON",
    ]  # fmt: skip
    assert lines[0].endswith("payment: WalletNotLinked (10900): no wallet")
    assert "FAILED" in lines[1] and "COMPLETED" in lines[1]
    assert text.endswith(COMPLETED_NOTE)
    document: Any = list_json(listed)
    assert document["orders"][0]["reason"] == wallet.reason
    assert document["orders"][2]["reason"] is None


def test_no_note_without_an_order_that_ended_badly() -> None:
    text = render_list([Listed(summary("stuck", "NEEDS_ATTENTION"), "why")])
    assert COMPLETED_NOTE not in text
    assert render_list([]) == "No orders."


def test_the_attention_line_names_the_code_once() -> None:
    assert with_code("payment: WalletNotLinked (10900): no wallet", 10900).count("10900") == 1
    assert with_code("the seller rejected the return", None) == "the seller rejected the return"
    assert with_code("Cotpay reported X", 10800) == "Cotpay reported X (Cotpay code 10800)"


def test_the_list_links_the_same_orders_in_the_temporal_ui(monkeypatch: Any) -> None:
    monkeypatch.delenv("TEMPORAL_UI_URL", raising=False)
    monkeypatch.delenv("TEMPORAL_NAMESPACE", raising=False)
    text = render_list([Listed(summary("gone", "FAILED", "COMPLETED"))], 'EscrowStatus = "FAILED"')
    assert text.splitlines()[-1] == (
        "In the Temporal UI: http://127.0.0.1:8233/namespaces/default/workflows"
        "?query=EscrowStatus%20%3D%20%22FAILED%22"
    )
    monkeypatch.setenv("TEMPORAL_UI_URL", "https://ui.example/")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "shop prod")
    assert ui_list_url('EscrowStatus = "HELD"') == (
        "https://ui.example/namespaces/shop%20prod/workflows?query=EscrowStatus%20%3D%20%22HELD%22"
    )
    assert render_list([], "q").startswith("No orders.\n\nIn the Temporal UI: https://ui.example/")
