"""The daily reconciliation's settings and its Temporal Schedule (docs/reconciliation.md).

``ReconcileSettings`` reads ``ESCROW_RECONCILE_*``; the worker builds its checks' limits from it
(``policy``) and decides whether Cotpay's ledger can be read (``ledger_url``: the sandbox's
``GET /sandbox/ledger``). ``ensure_schedule`` creates the Schedule ``escrow-reconciliation``
once, and brings its spec and action in line with the settings on later calls; the worker calls
it at start, ``cotpay-escrow ops reconcile --schedule`` on demand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

import structlog
from pydantic import AwareDatetime, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from runtime.settings import EscrowSettings
from workflows.reconcile_checks import (
    RECONCILE_WORKFLOW_TYPE,
    SCHEDULE_ID,
    ReconcileInput,
    ReconcilePolicy,
)

log = structlog.get_logger("cotpay_escrow.reconcile")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# A run that has not finished after this long is failed by Temporal (the report says which
# check ran out of time in the activity's failure).
RUN_TIMEOUT = timedelta(hours=6)
# A run missed while Temporal was down is made up for this long after its time.
CATCHUP = timedelta(days=1)

ScheduleOutcome = Literal["created", "updated", "unchanged", "disabled"]


class ReconcileSettings(BaseSettings):
    """``ESCROW_RECONCILE_*``: when the reconciliation runs and what it tolerates."""

    model_config = SettingsConfigDict(env_prefix="ESCROW_RECONCILE_", extra="ignore")

    # The worker creates the Schedule at start; false leaves Schedules alone.
    schedule: bool = True
    cron: str = "0 2 * * *"
    time_zone: str = "Asia/Ho_Chi_Minh"
    # An order past its deadline by more than this is a finding.
    margin: timedelta = timedelta(days=1)
    # What changed less than this long ago is not judged yet (writes and IPNs on their way).
    settle: timedelta = timedelta(minutes=10)
    # A workflow/store mismatch is looked at again after this many seconds before it counts.
    recheck: float = Field(default=30.0, ge=0, le=600)
    # Workflows started before this instant may lack a store row (see docs/reconciliation.md).
    store_since: AwareDatetime | None = None
    # Compare with Cotpay's ledger: auto = when COTPAY_BASE_URL is on loopback (the sandbox).
    ledger: Literal["auto", "on", "off"] = "auto"
    max_orders: int = Field(default=100_000, ge=1)
    concurrency: int = Field(default=8, ge=1, le=64)

    def policy(self, escrow: EscrowSettings) -> ReconcilePolicy:
        """The checks' limits: the order timers' defaults from ``escrow``, this margin."""
        return ReconcilePolicy(
            margin=self.margin,
            payment_window=escrow.payment_window,
            delivery_deadline=escrow.delivery_deadline,
            return_window=escrow.return_window,
            settle=self.settle,
            store_since=self.store_since,
        )

    def ledger_url(self, cotpay_base_url: str) -> str | None:
        """The base URL to read ``/sandbox/ledger`` from, or None when the ledger is off."""
        if self.ledger == "off":
            return None
        if self.ledger == "on" or urlsplit(cotpay_base_url).hostname in LOOPBACK_HOSTS:
            return cotpay_base_url.rstrip("/")
        return None


def summary(settings: ReconcileSettings) -> str:
    """The runs' summary in the Temporal UI; it also records the cron the Schedule was made
    with (Temporal keeps the cron only in a compiled form)."""
    return f"escrow reconciliation, cron '{settings.cron}' {settings.time_zone}"


def desired_schedule(settings: ReconcileSettings, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RECONCILE_WORKFLOW_TYPE,
            ReconcileInput(trigger="schedule"),
            id=SCHEDULE_ID,
            task_queue=task_queue,
            execution_timeout=RUN_TIMEOUT,
            static_summary=summary(settings),
        ),
        spec=ScheduleSpec(cron_expressions=[settings.cron], time_zone_name=settings.time_zone),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP),
        state=ScheduleState(note="daily reconciliation (docs/reconciliation.md)"),
    )


async def ensure_schedule(
    client: Client, settings: ReconcileSettings, task_queue: str
) -> ScheduleOutcome:
    """Create the Schedule ``escrow-reconciliation``, or align an existing one's spec, action
    and overlap policy with ``settings`` (its paused state and note are kept). Idempotent:
    every worker may call it at start."""
    if not settings.schedule:
        return "disabled"
    desired = desired_schedule(settings, task_queue)
    try:
        await client.create_schedule(SCHEDULE_ID, desired)
    except ScheduleAlreadyRunningError:
        pass
    else:
        log.info("reconcile.schedule_created", schedule=SCHEDULE_ID, cron=settings.cron)
        return "created"
    handle = client.get_schedule_handle(SCHEDULE_ID)
    current = (await handle.describe()).schedule
    if await _same(client, current, desired):
        return "unchanged"

    def update(input: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = input.description.schedule
        schedule.spec = desired.spec
        schedule.action = desired.action
        schedule.policy = desired.policy
        return ScheduleUpdate(schedule=schedule)

    await handle.update(update)
    log.info("reconcile.schedule_updated", schedule=SCHEDULE_ID, cron=settings.cron)
    return "updated"


async def _same(client: Client, current: Schedule, desired: Schedule) -> bool:
    action, wanted = current.action, desired.action
    if not (
        isinstance(action, ScheduleActionStartWorkflow)
        and isinstance(wanted, ScheduleActionStartWorkflow)
    ):
        return False
    text = action.static_summary
    if isinstance(text, Payload):
        try:
            text = (await client.data_converter.decode([text], [str]))[0]
        except Exception:  # an undecodable summary: rewrite it
            text = None
    return (
        action.workflow == RECONCILE_WORKFLOW_TYPE
        and action.task_queue == wanted.task_queue
        and action.id == SCHEDULE_ID
        and action.execution_timeout == wanted.execution_timeout
        and text == wanted.static_summary
        and current.spec.time_zone_name == desired.spec.time_zone_name
        and current.policy.overlap == desired.policy.overlap
    )


def now() -> datetime:
    return datetime.now(UTC)
