"""The reconciliation's activities: gather facts, run the pure checks, record findings
(docs/reconciliation.md).

Each check is one activity of ``EscrowReconciliationWorkflow`` (``workflows/reconciliation.py``):

- ``reconcile.orders``: every running escrow workflow on this task queue (visibility:
  ``WorkflowType = "EscrowOrderWorkflow" AND ExecutionStatus = "Running"``, then its ``status``
  query) against the store's row, and every store row in an open status whose workflow is not
  running; deadlines of both. A workflow/store mismatch is looked at again after
  ``ESCROW_RECONCILE_RECHECK`` seconds and counts only if it is still there (a store write may
  be on its way).
- ``reconcile.money``: paid out and refunded, and stranded money, from the store's money events.
- ``reconcile.ledger``: Cotpay's ledger (``GET /sandbox/ledger``, the sandbox only) against the
  store.
- ``reconcile.finish``: counts the open findings and reports the run's outcome to ``on_run``
  (the worker passes ``runtime.metrics.record_reconcile_run``: ``escrow_reconcile_runs``).

The checks are ``workflows/reconcile_checks.py``; findings go to ``OrderStore.open_finding``,
idempotent while open, so a retried activity adds nothing. A history finding (money events,
the ledger) an operator has closed is not opened again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import structlog
from pydantic import ValidationError
from temporalio import activity
from temporalio.client import Client, WorkflowExecution
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from store import reconcile as queries
from store.api import OrderStore
from store.models import FindingKind, OrderFilters, OrderRow, OrderSort
from workflows.models import DEFAULT_MERCHANT, WORKFLOW_TYPE, OrderView
from workflows.reconcile_checks import (
    OPEN_STATUSES,
    CheckResult,
    FindingDraft,
    FindingRef,
    LedgerOrder,
    OrderFacts,
    ReconcileInput,
    ReconcilePolicy,
    ReconcileReport,
    compare_ledger,
    compare_open_workflow,
    compare_unwatched,
    ledger_since,
    paid_and_refunded,
    past_deadline,
    stranded,
    tally,
)

log = structlog.get_logger("cotpay_escrow.reconcile")

QUERY_TIMEOUT = timedelta(seconds=10)
LEDGER_PATH = "/sandbox/ledger"
LEDGER_TIMEOUT = 20.0
PAGE = 1000
HEARTBEAT_EVERY = 50
# A workflow/store mismatch is one of these until it is seen again after the recheck delay.
TRANSIENT = frozenset(
    {FindingKind.STATUS_MISMATCH, FindingKind.AMOUNT_MISMATCH, FindingKind.MISSING_IN_STORE}
)


def running_query(task_queue: str) -> str:
    return (
        f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Running" '
        f'AND TaskQueue = "{task_queue}"'
    )


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ReconcileLimits:
    """How a run reads (the worker fills it from ``ESCROW_RECONCILE_*``, runtime/reconcile.py):
    seconds before a mismatch is looked at again, how many workflows and rows at most, how many
    ``status`` queries at once, and whether a missing ``/sandbox/ledger`` is an error (``on``)
    or a skipped check (``auto``)."""

    recheck: float = 30.0
    max_orders: int = 100_000
    concurrency: int = 8
    ledger: Literal["auto", "on", "off"] = "auto"


class ReconcileActivities:
    """The reconciliation's activities over one store, one Temporal client (the worker's, with
    the escrow data converter) and, when the ledger check is on, the sandbox's base URL."""

    def __init__(
        self,
        store: OrderStore,
        client: Client,
        *,
        policy: ReconcilePolicy,
        limits: ReconcileLimits | None = None,
        ledger_url: str | None = None,
        on_run: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.policy = policy
        self.settings = limits or ReconcileLimits()
        self.ledger_url = ledger_url
        self.on_run = on_run

    def all(self) -> list[Callable[..., Awaitable[Any]]]:
        return [self.orders, self.money, self.ledger, self.finish]

    # --- orders ------------------------------------------------------------------------------

    @activity.defn(name="reconcile.orders")
    async def orders(self, inp: ReconcileInput) -> CheckResult:
        """Running workflows against store rows, store rows without a running workflow, and
        deadlines."""
        started = _now()
        notes: list[str] = []
        task_queue = activity.info().task_queue
        executions = await self._running(task_queue)
        running, failed = await self._views(executions)
        if failed:
            notes.append(f"{failed} running workflows did not answer the status query")
        drafts = await self._compare_running(running, _now())
        unsure = {(d.merchant, d.order_ref) for d in drafts if d.kind in TRANSIENT and d.order_ref}
        if unsure and self.settings.recheck > 0:
            await self._pause(self.settings.recheck)
            again = {wid: f for wid, f in running.items() if (f.merchant, f.order_ref) in unsure}
            fresh, _ = await self._views([e for e in executions if e.id in again])
            # Whatever resolved itself meanwhile (a write on its way) is not a finding.
            drafts = [
                d
                for d in drafts
                if (d.merchant, d.order_ref) not in unsure or d.kind not in TRANSIENT
            ]
            rechecked = await self._compare_running(fresh, _now())
            drafts += [d for d in rechecked if d.kind in TRANSIENT]
        for facts in running.values():
            late = past_deadline(facts, self.policy, _now())
            if late is not None:
                drafts.append(late)
        unwatched, rows = await self._unwatched({f.workflow_id for f in running.values()})
        drafts += unwatched
        refs = await self._record(drafts, started)
        log.info(
            "reconcile.orders",
            running=len(running),
            open_rows=rows,
            findings=len(refs),
            trigger=inp.trigger,
        )
        return tally("orders", refs, examined=len(running) + rows, notes=notes)

    async def _running(self, task_queue: str) -> list[WorkflowExecution]:
        limit = self.settings.max_orders
        found: list[WorkflowExecution] = []
        async for execution in self.client.list_workflows(running_query(task_queue), limit=limit):
            found.append(execution)
            if len(found) % (HEARTBEAT_EVERY * 10) == 0:
                activity.heartbeat(f"listed {len(found)}")
        return found

    async def _views(
        self, executions: Sequence[WorkflowExecution]
    ) -> tuple[dict[str, OrderFacts], int]:
        """Each running workflow's ``status`` query, a few at a time; how many did not answer."""
        gate = asyncio.Semaphore(self.settings.concurrency)
        done = 0

        async def look(execution: WorkflowExecution) -> OrderFacts | None:
            nonlocal done
            async with gate:
                handle = self.client.get_workflow_handle(execution.id, run_id=execution.run_id)
                try:
                    view = await handle.query(
                        "status", result_type=OrderView, rpc_timeout=QUERY_TIMEOUT
                    )
                except Exception as exc:  # closed meanwhile, a stuck task, a bad payload
                    log.warning(
                        "reconcile.query_failed",
                        workflowId=execution.id,
                        error_type=type(exc).__name__,
                    )
                    return None
                finally:
                    done += 1
                    if done % HEARTBEAT_EVERY == 0:
                        activity.heartbeat(f"queried {done}")
            return OrderFacts.from_view(view, execution.start_time)

        results = await asyncio.gather(*(look(e) for e in executions))
        facts = {e.id: f for e, f in zip(executions, results, strict=True) if f is not None}
        return facts, len(executions) - len(facts)

    async def _compare_running(
        self, running: dict[str, OrderFacts], now: datetime
    ) -> list[FindingDraft]:
        drafts: list[FindingDraft] = []
        for i, facts in enumerate(running.values()):
            row = await self.store.get_row(facts.order_ref, facts.merchant)
            drafts += compare_open_workflow(facts, row, self.policy, now)
            if i % HEARTBEAT_EVERY == 0:
                activity.heartbeat(f"compared {i}")
        return drafts

    async def _unwatched(self, running: set[str]) -> tuple[list[FindingDraft], int]:
        """Store rows in an open status whose workflow is not among the running ones."""
        drafts: list[FindingDraft] = []
        examined = 0
        cursor: str | None = None
        filters = OrderFilters(status=sorted(OPEN_STATUSES))
        while examined < self.settings.max_orders:
            page = await self.store.list_orders(filters, OrderSort.CREATED_ASC, PAGE, cursor)
            for row in page.orders:
                examined += 1
                if row.workflow_id in running:
                    continue
                drafts += await self._check_unwatched(row)
            activity.heartbeat(f"store rows {examined}")
            cursor = page.next_cursor
            if cursor is None:
                break
        return drafts, examined

    async def _check_unwatched(self, row: OrderRow) -> list[FindingDraft]:
        now = _now()
        if now - row.updated_at < self.policy.settle:
            return []
        execution = await self._execution_status(row.workflow_id)
        if execution == "RUNNING":
            return []  # started or listed after our visibility read: the next run sees it
        drafts = [compare_unwatched(row, execution, self.policy, now)]
        drafts.append(past_deadline(OrderFacts.from_row(row), self.policy, now))
        return [d for d in drafts if d is not None]

    async def _execution_status(self, workflow_id: str) -> str | None:
        try:
            description = await self.client.get_workflow_handle(workflow_id).describe(
                rpc_timeout=QUERY_TIMEOUT
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        status = description.status
        return status.name if status is not None else None

    async def _pause(self, seconds: float) -> None:
        """Sleep, heartbeating, before looking at mismatches again."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            activity.heartbeat("recheck wait")
            await asyncio.sleep(min(left, 5.0))

    # --- money -------------------------------------------------------------------------------

    @activity.defn(name="reconcile.money")
    async def money(self, inp: ReconcileInput) -> CheckResult:
        """Paid out and refunded; stranded money (IPN after close, payout in doubt)."""
        started = _now()
        db = self.store.db
        refs = set(await queries.paid_and_refunded_refs(db)) | set(await queries.stranded_refs(db))
        # refs: (merchant, orderRef) pairs
        orders = await queries.money_of(db, refs=sorted(refs))
        drafts: list[FindingDraft] = []
        for order in orders:
            both = paid_and_refunded(order)
            drafts += [both] if both is not None else []
            drafts += stranded(order)
        recorded = await self._record(drafts, started)
        log.info("reconcile.money", orders=len(orders), findings=len(recorded))
        return tally("money", recorded, examined=len(orders))

    # --- Cotpay's ledger ---------------------------------------------------------------------

    @activity.defn(name="reconcile.ledger")
    async def ledger(self, inp: ReconcileInput) -> CheckResult:
        """Cotpay's ledger (the sandbox's ``GET /sandbox/ledger``) against the store."""
        if self.ledger_url is None:
            return CheckResult(check="ledger", skipped="ledger check off (not the sandbox)")
        started = _now()
        ledger = await self._fetch_ledger(self.ledger_url)
        if ledger is None:
            return CheckResult(
                check="ledger", skipped=f"no {LEDGER_PATH} at {self.ledger_url}: not the sandbox"
            )
        db = self.store.db
        # The ledger is the default merchant's Cotpay account (COTPAY_BASE_URL): Cotpay order
        # ids of other merchants' accounts may be the same numbers.
        mine = DEFAULT_MERCHANT
        ids = [o.id_order for o in ledger]
        orders = await queries.money_of(db, cotpay_ids=ids, merchant=mine)
        since = ledger_since(ledger)
        if since is not None:
            known = {(o.merchant, o.order_ref) for o in orders}
            settled = await queries.settled_refs(db, since, merchant=mine)
            orders += await queries.money_of(db, refs=[k for k in settled if k not in known])
        drafts = compare_ledger(ledger, orders, self.policy, _now())
        recorded = await self._record(drafts, started)
        log.info("reconcile.ledger", cotpay_orders=len(ledger), findings=len(recorded))
        return tally("ledger", recorded, examined=len(ledger))

    async def _fetch_ledger(self, base_url: str) -> list[LedgerOrder] | None:
        async with httpx.AsyncClient(
            base_url=base_url, timeout=LEDGER_TIMEOUT, follow_redirects=False
        ) as http:
            response = await http.get(LEDGER_PATH)
        if response.status_code == 404 and self.settings.ledger == "auto":
            return None
        if response.status_code != 200:
            raise ApplicationError(
                f"{LEDGER_PATH} answered {response.status_code}", type="LedgerUnavailable"
            )
        try:
            return [LedgerOrder.model_validate(o) for o in response.json()["orders"]]
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise ApplicationError(
                f"{LEDGER_PATH}: unreadable answer", type="LedgerUnreadable", non_retryable=True
            ) from exc

    # --- findings and the end of a run -------------------------------------------------------

    async def _record(self, drafts: Sequence[FindingDraft], started: datetime) -> list[FindingRef]:
        """Open each finding (idempotent while open); a history finding whose key an operator
        closed is skipped. ``new``: opened by this call."""
        unique: dict[tuple[str, FindingKind, str], FindingDraft] = {}
        for draft in drafts:
            unique.setdefault((draft.merchant, draft.kind, draft.key), draft)
        closed: set[tuple[str, FindingKind, str]] = set()
        for merchant, kind in {(m, k) for (m, k, _), d in unique.items() if not d.reopen}:
            keys = [
                key
                for (m, k, key), d in unique.items()
                if m == merchant and k is kind and not d.reopen
            ]
            state = await queries.finding_state(self.store.db, kind, keys, merchant)
            closed |= {(merchant, kind, key) for key, is_open in state.items() if not is_open}
        refs: list[FindingRef] = []
        for (merchant, kind, key), draft in unique.items():
            if (merchant, kind, key) in closed:
                continue
            finding = await self.store.open_finding(
                kind,
                merchant=merchant,
                order_ref=draft.order_ref,
                key=key,
                detail=draft.detail,
                data=draft.data,
            )
            refs.append(
                FindingRef(
                    id=finding.id,
                    kind=finding.kind,
                    key=finding.key,
                    merchant=finding.merchant,
                    order_ref=finding.order_ref,
                    detail=finding.detail,
                    new=finding.opened_at >= started,
                )
            )
            if finding.opened_at >= started:
                log.warning(
                    "reconcile.finding",
                    finding=finding.id,
                    kind=kind.value,
                    merchant=merchant,
                    orderRef=draft.order_ref,
                    detail=draft.detail,
                )
        return refs

    @activity.defn(name="reconcile.finish")
    async def finish(self, report: ReconcileReport) -> ReconcileReport:
        """Count the open findings (all of them, by kind) and the run."""
        counts = await queries.open_counts(self.store.db)
        done = report.model_copy(update={"open": counts, "finished_at": _now()})
        if self.on_run is not None:
            self.on_run(done.outcome)
        log.info(
            "reconcile.finished",
            outcome=done.outcome,
            found=done.found(),
            new=sum(c.new for c in done.checks),
            open=counts,
            trigger=done.trigger,
        )
        return done
