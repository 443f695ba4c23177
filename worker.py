"""The Temporal worker of the escrow orders: ``python worker.py`` or ``cotpay-escrow worker``.

Settings come from the environment (``TEMPORAL_*``, ``COTPAY_*``, ``ESCROW_*``;
docs/deployment.md); the runtime (connection, metrics, tracing) from ``runtime/``. The worker owns
the Cotpay client (one pooled HTTP client for all activities) and closes it on shutdown; SIGINT
and SIGTERM stop polling, let running activities finish (up to one HTTP timeout) and exit 0.
It also runs the webhook dispatcher beside the worker (docs/webhooks.md) unless
``ESCROW_WEBHOOK_DISPATCHER=false``: a separate asyncio task on the order store, which never
touches Temporal or the activities.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import structlog
from pydantic import SecretStr, ValidationError
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from activities.cotpay_activities import CotpayActivities
from activities.reconcile_activities import ReconcileActivities, ReconcileLimits
from cotpay.client import CotpayClient
from cotpay.logs import bind_order, configure_logging
from cotpay.settings import CotpaySettings
from runtime.metrics import (
    EscrowMetricsInterceptor,
    MetricsSettings,
    record_reconcile_run,
    start_service_metrics_server,
    temporal_runtime,
)
from runtime.reconcile import ReconcileSettings, ensure_schedule
from runtime.settings import EscrowSettings
from runtime.temporal import TemporalConfig, connect
from runtime.tracing import configure_tracing, shutdown_tracing
from store.api import OrderStore
from webhooks.dispatcher import Dispatcher
from webhooks.settings import WebhookSettings
from workflows.calls import START_TO_CLOSE
from workflows.escrow import EscrowOrderWorkflow
from workflows.reconciliation import EscrowReconciliationWorkflow

log = structlog.get_logger("worker")


class _ActivityLogContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        arg = input.args[0] if input.args else None
        with bind_order(
            orderRef=getattr(arg, "order_ref", None),
            workflowId=info.workflow_id,
            cotpayOrderId=getattr(arg, "id_order", None),
            step=info.activity_type.removeprefix("cotpay."),
        ):
            return await self.next.execute_activity(input)


class ActivityLogContext(Interceptor):
    """Every log line of an activity carries the order's ref, workflow id, Cotpay id and step."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityLogContext(next)


def check_timeouts(cotpay: CotpaySettings) -> None:
    """Activity timeouts must outlast one HTTP call, or every slow answer becomes a retry."""
    if cotpay.request_timeout >= START_TO_CLOSE.total_seconds():
        raise ValueError(
            f"COTPAY_CONNECT_TIMEOUT + COTPAY_READ_TIMEOUT = {cotpay.request_timeout:g}s must be"
            f" below the activity start-to-close timeout ({START_TO_CLOSE.total_seconds():g}s)"
        )


def build_worker(
    client: Client,
    cotpay_client: CotpayClient,
    *,
    task_queue: str,
    public_url: str,
    ipn_secret: SecretStr,
    graceful_shutdown: timedelta,
    reconcile: ReconcileActivities | None = None,
) -> Worker:
    """The escrow worker: the workflow, one activity per endpoint, metrics and log context;
    with ``reconcile``, also the daily reconciliation (docs/reconciliation.md)."""
    activities = CotpayActivities(cotpay_client, public_url=public_url, ipn_secret=ipn_secret)
    workflows: list[type] = [EscrowOrderWorkflow]
    registered: list[Any] = list(activities.all())
    if reconcile is not None:
        workflows.append(EscrowReconciliationWorkflow)
        registered += reconcile.all()
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=registered,
        interceptors=[EscrowMetricsInterceptor(), ActivityLogContext()],
        graceful_shutdown_timeout=graceful_shutdown,
    )


async def schedule_reconciliation(
    client: Client, settings: ReconcileSettings, task_queue: str
) -> None:
    """Create or align the daily reconciliation's Schedule; a failure is logged, never fatal
    (``cotpay-escrow ops reconcile --schedule`` does the same by hand)."""
    try:
        outcome = await ensure_schedule(client, settings, task_queue)
    except Exception as exc:  # e.g. a server without Schedules
        log.warning("reconcile.schedule_failed", error_type=type(exc).__name__, error=str(exc))
        return
    log.info("reconcile.schedule", outcome=outcome, cron=settings.cron, tz=settings.time_zone)


def webhook_dispatcher() -> Dispatcher | None:
    """The webhook dispatcher this worker runs (docs/webhooks.md); None when
    ``ESCROW_WEBHOOK_DISPATCHER=false``, or when its settings are unusable: that is logged, and
    the worker runs orders all the same (webhooks never hold money up)."""
    try:
        hooks = WebhookSettings()
        return Dispatcher.from_env(hooks) if hooks.dispatcher else None
    except (ValidationError, ValueError, OSError) as err:
        log.error("webhooks.dispatcher_not_started", error=str(err)[:300])
        return None


async def run_worker(
    temporal: TemporalConfig,
    cotpay: CotpaySettings,
    escrow: EscrowSettings,
    *,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the worker on ``temporal.task_queue`` until ``stop`` is set (forever without one)."""
    check_timeouts(cotpay)
    stop = stop or asyncio.Event()
    metrics = MetricsSettings()
    start_service_metrics_server(metrics)
    client = await connect(
        temporal,
        interceptors=configure_tracing("cotpay-escrow-worker"),
        runtime=temporal_runtime(metrics.sdk_metrics_address),
    )
    reconciling = ReconcileSettings()
    async with CotpayClient(cotpay) as cotpay_client, OrderStore.open() as store:
        await store.ensure_schema()
        reconcile = ReconcileActivities(
            store,
            client,
            policy=reconciling.policy(escrow),
            limits=ReconcileLimits(
                recheck=reconciling.recheck,
                max_orders=reconciling.max_orders,
                concurrency=reconciling.concurrency,
                ledger=reconciling.ledger,
            ),
            ledger_url=reconciling.ledger_url(cotpay.base_url),
            on_run=record_reconcile_run,
        )
        worker = build_worker(
            client,
            cotpay_client,
            task_queue=temporal.task_queue,
            public_url=escrow.public_url,
            ipn_secret=escrow.ipn_secret,
            graceful_shutdown=timedelta(seconds=cotpay.request_timeout + 5),
            reconcile=reconcile,
        )
        dispatcher = webhook_dispatcher()
        dispatching: asyncio.Task[None] | None = None
        try:
            async with worker:
                await schedule_reconciliation(client, reconciling, temporal.task_queue)
                if dispatcher is not None:
                    dispatching = asyncio.create_task(dispatcher.run(stop))
                log.info(
                    "worker.started",
                    address=temporal.address,
                    namespace=temporal.namespace,
                    task_queue=temporal.task_queue,
                    cotpay=cotpay.base_url,
                    webhooks=dispatcher is not None,
                )
                await stop.wait()
                log.info("worker.stopping")
        finally:
            if dispatcher is not None:
                stop.set()  # the dispatcher stops with the worker, also when the worker failed
                if dispatching is not None:
                    await dispatching
                await dispatcher.db.close()
    shutdown_tracing()
    log.info("worker.stopped")


async def serve() -> None:
    """Run the worker from environment settings until SIGINT or SIGTERM."""
    escrow = EscrowSettings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(TemporalConfig.from_env(), CotpaySettings(), escrow, stop=stop)


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="worker.py",
        description="Run the escrow worker on the cotpay-escrow task queue until SIGINT/SIGTERM."
        " Configuration: TEMPORAL_*, COTPAY_*, ESCROW_* environment variables"
        " (docs/deployment.md).",
    )


def main(argv: Sequence[str] = ()) -> int:
    _parser().parse_args(list(argv))
    configure_logging(EscrowSettings().log_format)
    # The workflow id and order context travel as fields (cotpay.logs.record_context).
    workflow.logger.workflow_info_on_message = False
    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
