"""A gRPC connection that breaks mid-call means Temporal is unavailable (gateway 503), not a bug.

Found by ``make chaos`` (docs/reliability.md): when the Temporal server is killed during a call,
the SDK raises ``RPCError(status=UNKNOWN, message="transport error")``; ``POST /v1/orders``
answered ``500 internal_error`` instead of ``503 temporal_unavailable``, which tells the shop to
repeat the request. Unit level: a stand-in Temporal client raises what the SDK raised.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from starter.client.errors import TemporalUnavailable
from starter.client.escrow import EscrowClient
from workflows.models import IpnSignal, OrderInput


def _transport_error() -> RPCError:
    return RPCError("transport error", RPCStatusCode.UNKNOWN, b"")


class _BrokenHandle:
    async def query(self, *args: Any, **kwargs: Any) -> Any:
        raise _transport_error()

    async def signal(self, *args: Any, **kwargs: Any) -> Any:
        raise _transport_error()

    async def execute_update(self, *args: Any, **kwargs: Any) -> Any:
        raise _transport_error()

    async def fetch_history_events(self, *args: Any, **kwargs: Any) -> Any:
        raise _transport_error()
        yield  # an async generator, like the SDK's


class _BrokenClient:
    def get_workflow_handle(self, workflow_id: str) -> _BrokenHandle:
        return _BrokenHandle()

    async def execute_update_with_start_workflow(self, *args: Any, **kwargs: Any) -> Any:
        raise _transport_error()


@pytest.fixture
def orders() -> EscrowClient:
    return EscrowClient(cast(Client, _BrokenClient()), search_salt=None)


async def test_start_is_unavailable(orders: EscrowClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def never_started(order_ref: str, merchant: str) -> None:
        return None

    monkeypatch.setattr(orders, "_started", never_started)
    order = OrderInput(order_ref="t1", seller_id="0911000001", buyer_id="0922000002", amount=50_000)
    with pytest.raises(TemporalUnavailable):
        await orders.start_order(order)


async def test_read_signal_and_update_are_unavailable(orders: EscrowClient) -> None:
    with pytest.raises(TemporalUnavailable):
        await orders.get_order("t1")
    ipn = IpnSignal.model_validate({"step": "verify", "body": {"status": "HOLDING"}})
    with pytest.raises(TemporalUnavailable):
        await orders.send_ipn("t1", ipn)
    with pytest.raises(TemporalUnavailable):
        await orders.confirm_delivery("t1")
