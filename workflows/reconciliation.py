"""``EscrowReconciliationWorkflow``: one reconciliation run (docs/reconciliation.md).

Started by the Schedule ``escrow-reconciliation`` (daily, ``runtime/reconcile.py``) or by
``cotpay-escrow ops reconcile --run``, on the escrow task queue. It runs the checks one after
the other, each an activity of ``ReconcileActivities`` (orders, money, ledger): a check that
still fails after its retries is reported as such (``error``) and the others run anyway. Then
``reconcile.finish`` counts the open findings and the run. The result, ``ReconcileReport``, is
the run's summary; the findings themselves are in the order store.

It shares no code path with ``EscrowOrderWorkflow`` and issues no command to an order, so the
escrow histories replay unchanged. The ``report`` query shows the checks done so far.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.reconcile_activities import ReconcileActivities
    from workflows.reconcile_checks import (
        RECONCILE_WORKFLOW_TYPE,
        CheckName,
        CheckResult,
        ReconcileInput,
        ReconcileReport,
    )

CHECK_TIMEOUT = timedelta(hours=1)
HEARTBEAT_TIMEOUT = timedelta(minutes=2)
FINISH_TIMEOUT = timedelta(minutes=1)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=5,
    non_retryable_error_types=["LedgerUnreadable"],
)

Check = Callable[[ReconcileActivities, ReconcileInput], Awaitable[CheckResult]]
CHECKS: tuple[tuple[CheckName, Check], ...] = (
    ("orders", ReconcileActivities.orders),
    ("money", ReconcileActivities.money),
    ("ledger", ReconcileActivities.ledger),
)


@workflow.defn(name=RECONCILE_WORKFLOW_TYPE)
class EscrowReconciliationWorkflow:
    def __init__(self) -> None:
        self._report: ReconcileReport | None = None

    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileReport:
        report = ReconcileReport(
            trigger=inp.trigger, requested_by=inp.requested_by, started_at=workflow.now()
        )
        self._report = report
        for name, check in CHECKS:
            try:
                result = await workflow.execute_activity_method(
                    check,
                    inp,
                    start_to_close_timeout=CHECK_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=RETRY,
                )
            except ActivityError as err:
                cause = err.cause if err.cause is not None else err
                result = CheckResult(check=name, error=f"{type(cause).__name__}: {cause}"[:500])
                workflow.logger.warning("reconcile check %s failed: %s", name, result.error)
            report.checks.append(result)
        self._report = report = await workflow.execute_activity_method(
            ReconcileActivities.finish,
            report,
            start_to_close_timeout=FINISH_TIMEOUT,
            retry_policy=RETRY,
        )
        return report

    @workflow.query
    def report(self) -> ReconcileReport | None:
        return self._report
