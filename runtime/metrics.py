"""Metrics: the Temporal SDK's Prometheus endpoint and the service's own series (docs/alerting.md).

Service series live in ``prometheus_client``'s default registry. The gateway serves them on its
own ``/metrics`` (``mount_metrics``) and refreshes the ``NEEDS_ATTENTION`` gauge every
``ESCROW_ATTENTION_INTERVAL`` seconds (0 turns it off); the worker has no HTTP server, so it
serves them with ``start_service_metrics_server`` on ``ESCROW_METRICS_PORT``, next to the SDK's
endpoint on ``ESCROW_SDK_METRICS_ADDRESS``.

Workflow code must not touch these counters (replay would count twice), so ``EscrowMetrics
Interceptor`` counts on the worker: final statuses and the payout delay when a workflow returns
outside replay, Cotpay calls by activity name and outcome code.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import prometheus_client
import structlog
from fastapi import FastAPI, Response
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from cotpay.codes import CotpayCodeError, CotpayProtocolError, CotpayTransportError
from workflows.reconcile_checks import RECONCILE_WORKFLOW_TYPE

log = structlog.get_logger(__name__)

SUCCESS_CODE = "10100"
ACTIVITY_PREFIX = "cotpay."

ORDERS_STARTED = prometheus_client.Counter(
    "escrow_orders_started", "Escrow orders started (new workflows, not repeated starts)"
)
ORDERS_FINISHED = prometheus_client.Counter(
    "escrow_orders_finished", "Escrow orders that reached a final status", ["status"]
)
IPN_RECEIVED = prometheus_client.Counter(
    "escrow_ipn_received", "IPN callbacks received by the gateway", ["step"]
)
IPN_REJECTED = prometheus_client.Counter(
    "escrow_ipn_rejected", "IPN callbacks answered with an error", ["reason"]
)
IPN_AFTER_CLOSE = prometheus_client.Counter(
    "escrow_ipn_after_close",
    "IPNs for orders whose workflow had finished (HOLDING or PAYOUT_FAILED: money may be stranded)",
    ["status"],
)
COTPAY_CALLS = prometheus_client.Counter(
    "escrow_cotpay_calls", "Calls to Cotpay by endpoint and answer code", ["endpoint", "code"]
)
PAYOUT_DELAY = prometheus_client.Histogram(
    "escrow_payout_delay_seconds",
    "Seconds between the earliest allowed payout (16:00 T+1 rule) and the actual payout",
    buckets=(60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400),
)

ORDERS_NEEDING_ATTENTION = prometheus_client.Gauge(
    "escrow_orders_needs_attention",
    "Running orders whose EscrowStatus is NEEDS_ATTENTION (from visibility, refreshed)",
)
ATTENTION_QUERY = 'EscrowStatus = "NEEDS_ATTENTION" AND ExecutionStatus = "Running"'

# The daily reconciliation (docs/reconciliation.md): runs counted by the worker, open findings
# counted from the store by the gateway (every ESCROW_ATTENTION_INTERVAL seconds).
RECONCILE_RUNS = prometheus_client.Counter(
    "escrow_reconcile_runs",
    "Reconciliation runs by outcome (clean, findings, incomplete)",
    ["outcome"],
)
RECONCILE_LAST_COMPLETE = prometheus_client.Gauge(
    "escrow_reconcile_last_complete_timestamp_seconds",
    "Unix time of the end of the last reconciliation run in which every check ran",
)
RECONCILE_FINDINGS = prometheus_client.Gauge(
    "escrow_reconcile_findings",
    "Open reconciliation and stranded-money findings by kind (from the order store, refreshed)",
    ["kind"],
)


class MetricsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESCROW_", extra="ignore")

    sdk_metrics_address: str | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    attention_interval: float = Field(default=60.0, ge=0)


def temporal_runtime(sdk_metrics_address: str | None) -> Runtime | None:
    """A runtime exporting SDK metrics on ``http://<address>/metrics``; None keeps the default.

    Pass it as ``runtime=`` to ``Client.connect`` (the worker inherits it from its client).
    """
    if not sdk_metrics_address:
        return None
    return Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=sdk_metrics_address))
    )


def start_service_metrics_server(settings: MetricsSettings) -> bool:
    """Serve the service series over HTTP when ``ESCROW_METRICS_PORT`` is set (worker side)."""
    if settings.metrics_port is None:
        return False
    prometheus_client.start_http_server(settings.metrics_port, addr=settings.metrics_host)
    return True


def mount_metrics(app: FastAPI, path: str = "/metrics") -> None:
    """Serve the service series on ``path`` of a FastAPI app (the gateway), outside OpenAPI."""

    async def metrics() -> Response:
        return Response(
            prometheus_client.generate_latest(), media_type=prometheus_client.CONTENT_TYPE_LATEST
        )

    app.add_api_route(path, metrics, methods=["GET"], include_in_schema=False)


def record_order_started() -> None:
    ORDERS_STARTED.inc()


def record_ipn(step: str) -> None:
    IPN_RECEIVED.labels(step=step).inc()


def record_ipn_rejected(reason: str) -> None:
    """``reason`` is a stable code such as ``bad_signature``, ``bad_body``, ``temporal_error``."""
    IPN_REJECTED.labels(reason=reason).inc()


def record_ipn_after_close(status: str) -> None:
    IPN_AFTER_CLOSE.labels(status=status).inc()


def record_reconcile_run(outcome: str) -> None:
    RECONCILE_RUNS.labels(outcome=outcome).inc()
    if outcome != "incomplete":
        RECONCILE_LAST_COMPLETE.set_to_current_time()


def set_open_findings(counts: Mapping[str, int], kinds: Iterable[str] = ()) -> None:
    """Publish the open findings by kind; every kind in ``kinds`` not in ``counts`` is 0."""
    for kind in {*kinds, *counts}:
        RECONCILE_FINDINGS.labels(kind=kind).set(counts.get(kind, 0))


async def findings_gauge_loop(
    count: Callable[[], Awaitable[Mapping[str, int]]],
    kinds: Iterable[str],
    stop: asyncio.Event,
    *,
    interval: float = 60.0,
) -> None:
    """Refresh ``escrow_reconcile_findings`` from ``count()`` every ``interval`` seconds."""
    names = list(kinds)
    while not stop.is_set():
        try:
            set_open_findings(await count(), names)
        except Exception as exc:  # the store may be down; the next round tries again
            log.warning("findings_gauge_failed", error_type=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


def record_cotpay_call(endpoint: str, code: str) -> None:
    COTPAY_CALLS.labels(endpoint=endpoint, code=code).inc()


def record_final_status(
    status: str, *, paid_out_at: datetime | None = None, payout_not_before: datetime | None = None
) -> None:
    ORDERS_FINISHED.labels(status=status).inc()
    if paid_out_at is not None and payout_not_before is not None:
        PAYOUT_DELAY.observe(max(0.0, (paid_out_at - payout_not_before).total_seconds()))


async def refresh_attention_gauge(client: Client, query: str = ATTENTION_QUERY) -> int:
    """Count stuck orders through visibility and publish the count; returns it."""
    count = (await client.count_workflows(query)).count
    ORDERS_NEEDING_ATTENTION.set(count)
    return count


async def attention_gauge_loop(
    client: Client, stop: asyncio.Event, *, interval: float = 60.0
) -> None:
    """Refresh ``escrow_orders_needs_attention`` every ``interval`` seconds until ``stop``."""
    while not stop.is_set():
        try:
            await refresh_attention_gauge(client)
        except RPCError as exc:
            log.warning("attention_gauge_failed", error=exc.message)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


def outcome_code(exc: BaseException | None) -> str:
    """The ``code`` label for a Cotpay call: Cotpay's code, or the kind of failure."""
    if exc is None:
        return SUCCESS_CODE
    if isinstance(exc, CotpayCodeError):
        return str(exc.code)
    if isinstance(exc, CotpayTransportError):
        return "transport"
    if isinstance(exc, CotpayProtocolError):
        return "protocol"
    if isinstance(exc, ApplicationError) and exc.type:
        return exc.type
    return "error"


def _status_of(result: Any) -> str | None:
    status = getattr(result, "status", None)
    return None if status is None else str(getattr(status, "value", status))


class _WorkflowMetrics(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        if workflow.info().workflow_type == RECONCILE_WORKFLOW_TYPE:  # not an order
            return await self.next.execute_workflow(input)
        try:
            result = await self.next.execute_workflow(input)
        except FailureError:
            if not workflow.unsafe.is_replaying():
                record_final_status("WORKFLOW_FAILED")
            raise
        status = _status_of(result)
        if status is not None and not workflow.unsafe.is_replaying():
            record_final_status(
                status,
                paid_out_at=getattr(result, "paid_out_at", None),
                payout_not_before=getattr(result, "payout_not_before", None),
            )
        return result


class _ActivityMetrics(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = activity.info().activity_type
        if not name.startswith(ACTIVITY_PREFIX):
            return await self.next.execute_activity(input)
        endpoint = name.removeprefix(ACTIVITY_PREFIX)
        try:
            result = await self.next.execute_activity(input)
        except Exception as exc:
            record_cotpay_call(endpoint, outcome_code(exc))
            raise
        record_cotpay_call(endpoint, SUCCESS_CODE)
        return result


class EscrowMetricsInterceptor(Interceptor):
    """Worker interceptor: ``Worker(..., interceptors=[EscrowMetricsInterceptor()])``."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityMetrics(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _WorkflowMetrics
