"""Metrics and logs of the real processes after an order completes on a real dev server.

The gateway runs in-process on the connection ``cotpay-escrow gateway`` makes (SDK metrics on),
the worker as ``python -m worker`` with ``ESCROW_METRICS_PORT`` and JSON logs, the sandbox pays
out at once. Then both ``/metrics`` endpoints are scraped and the worker's log is read.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.temporal import TemporalConfig
from sandbox.testing import running_sandbox
from starter.cli import gateway as gateway_cmd
from starter.stack.devserver import DevServer
from starter.stack.processes import free_port
from tests.e2e.driver import E2EStack, e2e_stack
from workflows.models import EscrowStatus, workflow_id_for

pytestmark = pytest.mark.e2e

PHONE = re.compile(r"(?<![0-9])0[0-9]{9}(?![0-9])")


@dataclass
class Observed:
    stack: E2EStack
    order: dict[str, Any]
    gateway_metrics: str
    gateway_sdk_metrics: str
    worker_metrics: str
    worker_sdk_metrics: str
    worker_log: Path


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.get(url)
    assert r.status_code == 200, r.text
    return r.text


@pytest.fixture(scope="module")
async def observed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Observed]:
    work = tmp_path_factory.mktemp("observability")
    dev = DevServer(work / "temporal.db", log_file=work / "temporal.log")
    await dev.start()
    gateway_sdk = f"127.0.0.1:{free_port()}"
    worker_sdk = f"127.0.0.1:{free_port()}"
    worker_port = free_port()
    temporal = TemporalConfig(address=dev.address, namespace="default")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ESCROW_SDK_METRICS_ADDRESS", gateway_sdk)
        client = await gateway_cmd._connect(temporal, 10)
    try:
        async with (
            running_sandbox(work / "keys", payout_rule="immediate") as sandbox,
            e2e_stack(
                temporal,
                sandbox,
                client=client,
                worker="process",
                log_dir=work,
                worker_extra_env={
                    "ESCROW_METRICS_PORT": str(worker_port),
                    "ESCROW_SDK_METRICS_ADDRESS": worker_sdk,
                },
            ) as stack,
        ):
            order = await complete_an_order(stack)
            r = await stack.post_ipn(order["orderRef"], "payment", {}, sig="forged")
            assert r.status_code == 403
            yield Observed(
                stack=stack,
                order=order,
                gateway_metrics=await scrape(f"{stack.gateway_url}/metrics"),
                gateway_sdk_metrics=await scrape(f"http://{gateway_sdk}/metrics"),
                worker_metrics=await scrape(f"http://127.0.0.1:{worker_port}/metrics"),
                worker_sdk_metrics=await scrape(f"http://{worker_sdk}/metrics"),
                worker_log=work / "worker.log",
            )
    finally:
        await dev.stop()


async def complete_an_order(stack: E2EStack) -> dict[str, Any]:
    view = await stack.started("obs")
    await stack.pay(view["cotpayOrderId"])
    await stack.wait_status(view["orderRef"], EscrowStatus.HELD)
    r = await stack.http.post(f"/v1/orders/{view['orderRef']}/delivered", json={})
    assert r.status_code == 200, r.text
    handle = stack.temporal.get_workflow_handle(workflow_id_for(view["orderRef"]))
    await asyncio.wait_for(handle.result(), timeout=45)
    return await stack.view(view["orderRef"])


def value(text: str, series: str) -> float:
    """The value of one exposition line (``name{labels}``), 0 when absent."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_gateway_exposes_orders_and_ipns(observed: Observed) -> None:
    text = observed.gateway_metrics
    assert observed.order["status"] == EscrowStatus.PAID_OUT
    assert value(text, "escrow_orders_started_total") >= 1
    for step in ("verify", "payment"):
        assert value(text, f'escrow_ipn_received_total{{step="{step}"}}') >= 1, step
    assert value(text, 'escrow_ipn_rejected_total{reason="bad_signature"}') >= 1
    assert "escrow_orders_needs_attention" in text
    assert "temporal_request" in observed.gateway_sdk_metrics


def test_worker_exposes_final_status_calls_and_payout_delay(observed: Observed) -> None:
    text = observed.worker_metrics
    assert value(text, 'escrow_orders_finished_total{status="PAID_OUT"}') >= 1
    for endpoint in ("customer_id", "create_order", "payment"):
        series = f'escrow_cotpay_calls_total{{code="10100",endpoint="{endpoint}"}}'
        assert value(text, series) >= 1, endpoint
    assert value(text, "escrow_payout_delay_seconds_count") >= 1
    assert "temporal_workflow_completed" in observed.worker_sdk_metrics


def test_worker_logs_are_json_with_order_context_and_no_phone_numbers(
    observed: Observed,
) -> None:
    lines = [
        json.loads(line)
        for line in observed.worker_log.read_text().splitlines()
        if line.startswith("{")
    ]
    ref = observed.order["orderRef"]
    calls = [line for line in lines if line.get("orderRef") == ref]
    assert calls, "no worker log line names the order"
    payment = [line for line in calls if line.get("step") == "payment"]
    assert payment, calls
    assert payment[0]["workflowId"] == workflow_id_for(ref)
    assert payment[0]["cotpayOrderId"] == observed.order["cotpayOrderId"]
    text = observed.worker_log.read_text()
    for user in (observed.order["sellerId"], observed.order["buyerId"]):
        assert user not in text
    assert not PHONE.search(text)
