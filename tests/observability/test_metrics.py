from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import prometheus_client
from fastapi import FastAPI
from temporalio.exceptions import ApplicationError

from cotpay.codes import CotpayProtocolError, CotpayTransportError, error_for
from runtime.metrics import (
    MetricsSettings,
    mount_metrics,
    outcome_code,
    record_cotpay_call,
    record_final_status,
    record_ipn,
    record_ipn_rejected,
    record_order_started,
    temporal_runtime,
)
from tests.support import serve


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def test_named_series_are_exposed() -> None:
    started = sample("escrow_orders_started_total")
    record_order_started()
    record_ipn("verify")
    record_ipn_rejected("bad_signature")
    record_cotpay_call("create_order", "10100")
    held = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    record_final_status("PAID_OUT", paid_out_at=held + timedelta(hours=2), payout_not_before=held)
    record_final_status("REFUNDED")
    text = prometheus_client.generate_latest().decode()
    for line in (
        "escrow_orders_started_total",
        'escrow_ipn_received_total{step="verify"}',
        'escrow_ipn_rejected_total{reason="bad_signature"}',
        'escrow_cotpay_calls_total{code="10100",endpoint="create_order"}',
        'escrow_orders_finished_total{status="REFUNDED"}',
        'escrow_payout_delay_seconds_bucket{le="10800.0"}',
    ):
        assert line in text
    assert sample("escrow_orders_started_total") == started + 1
    assert sample("escrow_payout_delay_seconds_sum") >= 7200


def test_outcome_codes() -> None:
    assert outcome_code(None) == "10100"
    assert outcome_code(error_for(10900, "wallet not linked")) == "10900"
    assert outcome_code(CotpayTransportError("reset")) == "transport"
    assert outcome_code(CotpayProtocolError("garbled")) == "protocol"
    assert outcome_code(ApplicationError("x", type="PayoutTooEarly")) == "PayoutTooEarly"
    assert outcome_code(RuntimeError("x")) == "error"


async def test_metrics_mount_serves_prometheus_text() -> None:
    app = FastAPI()
    mount_metrics(app)
    record_ipn("payment")
    async with serve(app) as url, httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{url}/metrics")
    assert response.status_code == 200
    assert 'escrow_ipn_received_total{step="payment"}' in response.text


def test_runtime_only_when_configured() -> None:
    assert temporal_runtime(None) is None
    assert temporal_runtime("") is None
    assert MetricsSettings().metrics_port is None
