"""The daily reconciliation's checks, as plain functions over facts (docs/reconciliation.md).

No I/O and no ``temporalio.workflow``: the activities (``activities/reconcile_activities.py``)
gather what the store, the open escrow workflows and Cotpay's ledger say, these functions say
what is wrong, as ``FindingDraft``s the activities record with ``OrderStore.open_finding``.
The models of the reconciliation workflow's input and report live here too, so that the
workflow (``workflows/reconciliation.py``), the activities and the CLI share them.

Each check and why:

- ``compare_open_workflow``: a running workflow and the store's row agree on status, Cotpay
  order id and amount; a workflow with no row at all is ``missing_in_store`` (unless it started
  before ``ReconcilePolicy.store_since`` or less than ``settle`` ago, or is still in CREATING:
  orders write their first row when creation ends).
- ``compare_unwatched``: a store row that says the order is open, while no workflow runs for it:
  nothing watches that order (or its money) any more.
- ``past_deadline``: an order that sits in a waiting status well past the time its own timers
  would have moved it on (``deadline_of`` + ``margin``).
- ``paid_and_refunded`` and ``stranded``: from the store's money events (immutable history).
- ``compare_ledger``: Cotpay's ledger (``GET /sandbox/ledger`` of the sandbox) against the
  store's money events and statuses.

A finding from history (money events, the ledger) is ``reopen=False``: once an operator closed
it, the same fact never opens it again. A finding about the current state (a mismatch, a
deadline) opens again on the next run while the anomaly persists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, ConfigDict, Field

from store.models import FindingKind, MoneyKind, OrderRow
from workflows.models import (
    TERMINAL_STATUSES,
    EscrowStatus,
    Model,
    OrderView,
    merchant_field,
    merchant_of_workflow_id,
)

RECONCILE_WORKFLOW_TYPE = "EscrowReconciliationWorkflow"
SCHEDULE_ID = "escrow-reconciliation"
MAX_LISTED_FINDINGS = 100

OPEN_STATUSES: frozenset[EscrowStatus] = frozenset(EscrowStatus) - TERMINAL_STATUSES

# Findings about history: closing one is final, the same fact never opens it again.
HISTORY_KINDS: frozenset[FindingKind] = frozenset(
    {
        FindingKind.IPN_AFTER_CLOSE,
        FindingKind.PAYOUT_IN_DOUBT,
        FindingKind.PAID_AND_REFUNDED,
        FindingKind.LEDGER_MISMATCH,
    }
)


class ReconcilePolicy(Model):
    """Limits the checks apply; the worker builds it from ``ESCROW_*`` settings."""

    margin: timedelta = timedelta(days=1)  # past a deadline by more than this: a finding
    creating_limit: timedelta = timedelta(hours=1)
    payment_window: timedelta = timedelta(hours=24)
    delivery_deadline: timedelta = timedelta(days=14)
    return_window: timedelta = timedelta(days=7)
    # Anything that changed less than this long ago may still be on its way: not judged yet.
    settle: timedelta = timedelta(minutes=10)
    # Workflows started before this instant may have no store row (started before the store
    # write path existed): not a finding. None: every order is expected in the store.
    store_since: AwareDatetime | None = None


class FindingDraft(Model):
    """A finding as a check reports it, before the store gives it an id."""

    kind: FindingKind
    key: str
    # The merchant of the order (a key is unique per merchant); left out for ``default``.
    merchant: str = merchant_field()
    order_ref: str | None = None
    detail: str
    data: dict[str, Any] = Field(default_factory=dict)
    reopen: bool = True


def _draft(
    kind: FindingKind,
    order_ref: str | None,
    detail: str,
    *,
    key: str | None = None,
    of: str | None = None,
    **data: Any,
) -> FindingDraft:
    """``of``: the order's merchant (None: ``default``)."""
    extra = {"merchant": of} if of is not None else {}
    return FindingDraft(
        **extra,
        kind=kind,
        key=key if key is not None else (order_ref or ""),
        order_ref=order_ref,
        detail=detail,
        data={k: _plain(v) for k, v in data.items() if v is not None},
        reopen=kind not in HISTORY_KINDS,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, EscrowStatus | MoneyKind):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# --- orders: running workflows and store rows ------------------------------------------------


class OrderFacts(Model):
    """An order's state as one side tells it: a running workflow's ``status`` query, or the
    store's row. ``updatedAt``: the time of its latest timeline entry."""

    order_ref: str
    merchant: str = merchant_field()
    workflow_id: str
    status: EscrowStatus
    amount: int
    cotpay_order_id: int | None = None
    created_at: datetime
    updated_at: datetime
    held_at: datetime | None = None
    delivered_at: datetime | None = None
    payout_not_before: datetime | None = None
    last_seq: int = 0

    @classmethod
    def from_view(cls, view: OrderView, started_at: datetime) -> Self:
        times = [e.time for e in view.timeline]
        return cls(
            order_ref=view.order_ref,
            merchant=merchant_of_workflow_id(view.workflow_id),
            workflow_id=view.workflow_id,
            status=view.status,
            amount=view.amount,
            cotpay_order_id=view.cotpay_order_id,
            created_at=started_at,
            updated_at=max(times, default=started_at),
            held_at=view.held_at,
            delivered_at=view.delivered_at,
            payout_not_before=view.payout_not_before,
            last_seq=len(view.timeline),
        )

    @classmethod
    def from_row(cls, row: OrderRow) -> Self:
        return cls(
            order_ref=row.order_ref,
            merchant=row.merchant,
            workflow_id=row.workflow_id,
            status=row.status,
            amount=row.amount,
            cotpay_order_id=row.cotpay_order_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            held_at=row.held_at,
            delivered_at=row.delivered_at,
            payout_not_before=row.payout_not_before,
            last_seq=row.last_seq,
        )


def compare_open_workflow(
    workflow: OrderFacts, row: OrderRow | None, policy: ReconcilePolicy, now: datetime
) -> list[FindingDraft]:
    """A running workflow against the store's row of the same order."""
    ref, of = workflow.order_ref, workflow.merchant
    if row is None:
        if now - workflow.created_at < policy.settle:
            return []  # its first write may still be on its way
        if policy.store_since is not None and workflow.created_at < policy.store_since:
            return []  # started before the store existed: written at its next transition
        if workflow.status is EscrowStatus.CREATING:
            # Since patch ``lean-history`` an order writes nothing while its Cotpay creation
            # calls are in flight (docs/store.md); one stuck there is ``past_deadline``.
            return []
        return [
            _draft(
                FindingKind.MISSING_IN_STORE,
                ref,
                f"workflow {workflow.workflow_id} runs in {workflow.status.value}, "
                "the store has no row for the order",
                of=of,
                workflowStatus=workflow.status,
                startedAt=workflow.created_at,
            )
        ]
    found: list[FindingDraft] = []
    fields: list[str] = []
    if row.status is not workflow.status:
        fields.append("status")
    if (
        row.cotpay_order_id is not None
        and workflow.cotpay_order_id is not None
        and row.cotpay_order_id != workflow.cotpay_order_id
    ):
        fields.append("cotpayOrderId")
    if fields:
        found.append(
            _draft(
                FindingKind.STATUS_MISMATCH,
                ref,
                f"the store says {row.status.value}, the workflow says {workflow.status.value}",
                of=of,
                fields=fields,
                storeStatus=row.status,
                workflowStatus=workflow.status,
                storeCotpayOrderId=row.cotpay_order_id,
                workflowCotpayOrderId=workflow.cotpay_order_id,
                storeLastSeq=row.last_seq,
                workflowLastSeq=workflow.last_seq,
            )
        )
    if row.amount != workflow.amount:
        found.append(
            _draft(
                FindingKind.AMOUNT_MISMATCH,
                ref,
                f"the store says {row.amount:,} VND, the workflow says {workflow.amount:,} VND",
                of=of,
                storeAmount=row.amount,
                workflowAmount=workflow.amount,
            )
        )
    return found


def compare_unwatched(
    row: OrderRow, execution: str | None, policy: ReconcilePolicy, now: datetime
) -> FindingDraft | None:
    """A store row in an open status whose workflow is not running (``execution``: Temporal's
    execution status of the workflow, e.g. ``TERMINATED``, or None when Temporal does not know
    it any more). Nothing watches that order: its money may be held with nobody to move it."""
    if row.status in TERMINAL_STATUSES or now - row.updated_at < policy.settle:
        return None
    if execution == "RUNNING":
        return None
    where = f"is {execution}" if execution else "is unknown to Temporal"
    return _draft(
        FindingKind.STATUS_MISMATCH,
        row.order_ref,
        f"the store says {row.status.value}, but workflow {row.workflow_id} {where}: "
        "nothing watches the order",
        of=row.merchant,
        fields=["status"],
        storeStatus=row.status,
        workflowExecution=execution or "NOT_FOUND",
        storeLastSeq=row.last_seq,
    )


def deadline_of(facts: OrderFacts, policy: ReconcilePolicy) -> datetime | None:
    """When the order's own timers should have moved it out of its status at the latest (the
    service defaults; an order started with longer timers may be reported early, see
    docs/reconciliation.md). None for statuses that wait without a deadline."""
    s = EscrowStatus
    match facts.status:
        case s.CREATING:
            return facts.created_at + policy.creating_limit
        case s.AWAITING_PAYMENT:
            return facts.created_at + policy.payment_window
        case s.HELD:
            return (facts.held_at or facts.updated_at) + policy.delivery_deadline
        case s.DELIVERED:
            return facts.payout_not_before or facts.delivered_at or facts.updated_at
        case s.PAYING_OUT:
            return max(facts.payout_not_before or facts.updated_at, facts.updated_at)
        case s.RETURN_REQUESTED:
            return facts.updated_at + policy.return_window
        case _:
            return None


def past_deadline(facts: OrderFacts, policy: ReconcilePolicy, now: datetime) -> FindingDraft | None:
    deadline = deadline_of(facts, policy)
    if deadline is None or now <= deadline + policy.margin:
        return None
    overdue = now - deadline
    return _draft(
        FindingKind.PAST_DEADLINE,
        facts.order_ref,
        f"in {facts.status.value} {_human(overdue)} past its deadline "
        f"({deadline.astimezone(UTC).isoformat()})",
        of=facts.merchant,
        status=facts.status,
        deadline=deadline,
        overdueSeconds=int(overdue.total_seconds()),
        updatedAt=facts.updated_at,
    )


def _human(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"


# --- money: the store's money events ---------------------------------------------------------


class MoneyEvent(Model):
    """One money event of ``order_events`` (``money`` set)."""

    seq: int
    time: datetime
    money: MoneyKind
    kind: str = ""
    amount: int | None = None
    transaction_id: str | None = None
    cotpay_order_id: int | None = None
    data: dict[str, Any] | None = None


class OrderMoney(Model):
    """What the store says about one order's money: its row and its money events."""

    order_ref: str
    merchant: str = merchant_field()
    status: EscrowStatus
    amount: int
    cotpay_order_id: int | None = None
    held_at: datetime | None = None
    paid_out_at: datetime | None = None
    refunded_at: datetime | None = None
    events: list[MoneyEvent] = Field(default_factory=list)

    def _has(self, kind: MoneyKind) -> bool:
        return any(e.money is kind for e in self.events)

    @property
    def paid(self) -> bool:
        return (
            self._has(MoneyKind.PAID_OUT)
            or self.status is EscrowStatus.PAID_OUT
            or self.paid_out_at is not None
        )

    @property
    def refunded(self) -> bool:
        return (
            self._has(MoneyKind.REFUNDED)
            or self.status is EscrowStatus.REFUNDED
            or self.refunded_at is not None
        )

    @property
    def held(self) -> bool:
        return (
            self.held_at is not None
            or self._has(MoneyKind.HELD)
            or self._has(MoneyKind.IPN_AFTER_CLOSE)
            or self.paid
            or self.refunded
        )

    def settled_at(self) -> datetime | None:
        """When the store's latest payout or refund happened."""
        times = [e.time for e in self.events if e.money in (MoneyKind.PAID_OUT, MoneyKind.REFUNDED)]
        times += [t for t in (self.paid_out_at, self.refunded_at) if t is not None]
        return max(times, default=None)


def stranded_key(order_ref: str, transaction_id: str | None, time: datetime) -> str:
    """The finding key of an IPN after close: the same for the gateway, which opens it when the
    IPN arrives, and for the reconciliation, which finds its money event."""
    if transaction_id:
        return f"{order_ref}:{transaction_id}"
    return f"{order_ref}:{time.astimezone(UTC).isoformat()}"


def paid_and_refunded(order: OrderMoney) -> FindingDraft | None:
    if not (order.paid and order.refunded):
        return None
    return _draft(
        FindingKind.PAID_AND_REFUNDED,
        order.order_ref,
        f"the store records both a payout and a refund of {order.amount:,} VND",
        of=order.merchant,
        status=order.status,
        paidOutAt=order.paid_out_at,
        refundedAt=order.refunded_at,
        events=[f"{e.seq}:{e.money.value}" for e in order.events],
    )


def stranded(order: OrderMoney) -> list[FindingDraft]:
    """Stranded money: every ``ipn_after_close`` event, and a payout whose latest answer is a
    doubt (``payout_in_doubt`` with no later ``payout_failed``, and no payout or refund)."""
    found: list[FindingDraft] = []
    for event in order.events:
        if event.money is MoneyKind.IPN_AFTER_CLOSE:
            status = (event.data or {}).get("status", "HOLDING")
            amount = event.amount if event.amount is not None else order.amount
            found.append(
                _draft(
                    FindingKind.IPN_AFTER_CLOSE,
                    order.order_ref,
                    f"Cotpay reported {status} with {amount:,} VND after the order closed "
                    f"({order.status.value}): nothing watches that money",
                    key=stranded_key(order.order_ref, event.transaction_id, event.time),
                    of=order.merchant,
                    seq=event.seq,
                    ipnStatus=status,
                    amount=amount,
                    transactionId=event.transaction_id,
                    cotpayOrderId=event.cotpay_order_id or order.cotpay_order_id,
                    time=event.time,
                )
            )
    if not (order.paid or order.refunded):
        answers = [
            e
            for e in order.events
            if e.money in (MoneyKind.PAYOUT_IN_DOUBT, MoneyKind.PAYOUT_FAILED)
        ]
        last = max(answers, key=lambda e: e.seq, default=None)
        if last is not None and last.money is MoneyKind.PAYOUT_IN_DOUBT:
            found.append(
                _draft(
                    FindingKind.PAYOUT_IN_DOUBT,
                    order.order_ref,
                    f"a payout of {order.amount:,} VND got no definite answer "
                    f"({order.status.value}): ask Cotpay whether it was paid",
                    key=f"{order.order_ref}:doubt:{last.seq}",
                    of=order.merchant,
                    seq=last.seq,
                    status=order.status,
                    time=last.time,
                )
            )
    return found


# --- Cotpay's ledger (the sandbox) -----------------------------------------------------------


class LedgerEntry(Model):
    model_config = ConfigDict(extra="ignore")

    transaction_id: str = ""
    amount: int
    at: datetime


class LedgerOrder(Model):
    """One order of ``GET /sandbox/ledger``: Cotpay's money side of it."""

    model_config = ConfigDict(extra="ignore")

    id_order: int
    amount: int
    status: str = ""
    holds: list[LedgerEntry] = Field(default_factory=list)
    payouts: list[LedgerEntry] = Field(default_factory=list)
    refunds: list[LedgerEntry] = Field(default_factory=list)

    def latest(self) -> datetime | None:
        return max((e.at for e in (*self.holds, *self.payouts, *self.refunds)), default=None)

    @property
    def moved_money(self) -> bool:
        return bool(self.holds or self.payouts or self.refunds)


def ledger_since(ledger: Sequence[LedgerOrder]) -> datetime | None:
    """The ledger's first entry: the store's payouts and refunds before it are not compared."""
    return min((t for o in ledger for t in [o.latest()] if t is not None), default=None)


def compare_ledger(
    ledger: Sequence[LedgerOrder],
    store: Iterable[OrderMoney],
    policy: ReconcilePolicy,
    now: datetime,
) -> list[FindingDraft]:
    """Cotpay's ledger against the store: each payout, refund and hold on one side is on the
    other, once, with the order's amount. ``store``: the orders whose Cotpay id is in the
    ledger, and the orders the store says were paid out or refunded since ``ledger_since``."""
    by_id = {o.cotpay_order_id: o for o in store if o.cotpay_order_id is not None}
    found: list[FindingDraft] = []
    for entry in ledger:
        latest = entry.latest()
        fresh = latest is not None and now - latest < policy.settle
        order = by_id.pop(entry.id_order, None)
        if order is None:
            if entry.moved_money and not fresh:
                found.append(
                    _draft(
                        FindingKind.LEDGER_MISMATCH,
                        None,
                        f"Cotpay's ledger moved money for Cotpay order {entry.id_order} "
                        f"({entry.amount:,} VND, {entry.status}), which no order in the store has",
                        key=f"cotpay:{entry.id_order}",
                        cotpayOrderId=entry.id_order,
                        ledgerStatus=entry.status,
                        holds=len(entry.holds),
                        payouts=len(entry.payouts),
                        refunds=len(entry.refunds),
                    )
                )
            continue
        found += _compare_ledger_order(entry, order, fresh)
    since = ledger_since(ledger)
    for order in by_id.values():
        settled = order.settled_at()
        if settled is None or since is None or settled < since or now - settled < policy.settle:
            continue
        what = "paid out" if order.paid else "refunded"
        found.append(
            _draft(
                FindingKind.LEDGER_MISMATCH,
                order.order_ref,
                f"the store says {what}, Cotpay's ledger has no money for Cotpay order "
                f"{order.cotpay_order_id}",
                key=f"{order.order_ref}:{'payout' if order.paid else 'refund'}",
                storeStatus=order.status,
                cotpayOrderId=order.cotpay_order_id,
            )
        )
    return found


def _compare_ledger_order(entry: LedgerOrder, order: OrderMoney, fresh: bool) -> list[FindingDraft]:
    ref = order.order_ref
    found: list[FindingDraft] = []
    common: dict[str, Any] = {"cotpayOrderId": entry.id_order, "storeStatus": order.status}
    if len(entry.payouts) > 1 or len(entry.refunds) > 1:
        found.append(
            _draft(
                FindingKind.LEDGER_MISMATCH,
                ref,
                f"Cotpay's ledger has {len(entry.payouts)} payouts and {len(entry.refunds)} "
                "refunds for the order",
                key=f"{ref}:twice",
                payouts=[e.transaction_id for e in entry.payouts],
                refunds=[e.transaction_id for e in entry.refunds],
                **common,
            )
        )
    if entry.payouts and entry.refunds:
        found.append(
            _draft(
                FindingKind.PAID_AND_REFUNDED,
                ref,
                "Cotpay's ledger has both a payout and a refund for the order",
                key=f"{ref}:ledger",
                **common,
            )
        )
    amounts = {e.amount for e in (*entry.holds, *entry.payouts, *entry.refunds)} | {entry.amount}
    if amounts != {order.amount}:
        found.append(
            _draft(
                FindingKind.AMOUNT_MISMATCH,
                ref,
                f"the store says {order.amount:,} VND, Cotpay's ledger says "
                + ", ".join(f"{a:,}" for a in sorted(amounts))
                + " VND",
                key=f"{ref}:ledger",
                storeAmount=order.amount,
                ledgerAmounts=sorted(amounts),
                **common,
            ).model_copy(update={"reopen": False})
        )
    if fresh:
        return found  # money moved moments ago: the store may not have it yet
    for side, ledger_has, store_has in (
        ("payout", bool(entry.payouts), order.paid),
        ("refund", bool(entry.refunds), order.refunded),
        ("hold", bool(entry.holds), order.held),
    ):
        if ledger_has == store_has:
            continue
        if side == "hold" and not ledger_has:
            detail = "the store says the money was held, Cotpay's ledger has no hold"
        elif ledger_has:
            detail = f"Cotpay's ledger has a {side}, the store does not ({order.status.value})"
        else:
            detail = f"the store has a {side} ({order.status.value}), Cotpay's ledger does not"
        found.append(
            _draft(
                FindingKind.LEDGER_MISMATCH,
                ref,
                detail,
                key=f"{ref}:{side}",
                side=side,
                ledger=ledger_has,
                store=store_has,
                **common,
            )
        )
    return found


# --- the workflow's input and report ---------------------------------------------------------

CheckName = Literal["orders", "money", "ledger"]


class ReconcileInput(Model):
    """The reconciliation workflow's input: who asked. The limits are the worker's settings."""

    trigger: Literal["schedule", "manual"] = "schedule"
    requested_by: Annotated[str, Field(max_length=100)] = ""


class FindingRef(Model):
    id: int
    kind: FindingKind
    key: str
    merchant: str = merchant_field()
    order_ref: str | None = None
    detail: str = ""
    new: bool = False


class CheckResult(Model):
    """What one check saw: how many orders it examined, the findings it recorded (new or
    already open; the first ``MAX_LISTED_FINDINGS`` listed), or why it was skipped or failed."""

    check: CheckName
    examined: int = 0
    found: dict[str, int] = Field(default_factory=dict)  # by kind
    new: int = 0
    findings: list[FindingRef] = Field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    notes: list[str] = Field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.found.values())


class ReconcileReport(Model):
    """One reconciliation run. ``outcome``: ``clean`` (no finding), ``findings``, or
    ``incomplete`` (a check failed). ``open``: every open finding by kind after the run,
    including those the gateway opened and those of earlier runs."""

    trigger: Literal["schedule", "manual"] = "schedule"
    requested_by: str = ""
    started_at: datetime
    finished_at: datetime | None = None
    checks: list[CheckResult] = Field(default_factory=list)
    open: dict[str, int] = Field(default_factory=dict)

    @property
    def outcome(self) -> Literal["clean", "findings", "incomplete"]:
        if any(c.error for c in self.checks):
            return "incomplete"
        return "findings" if any(c.total for c in self.checks) else "clean"

    def found(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for check in self.checks:
            for kind, count in check.found.items():
                total[kind] = total.get(kind, 0) + count
        return total


def tally(check: CheckName, refs: Sequence[FindingRef], **fields: Any) -> CheckResult:
    """A ``CheckResult`` counting ``refs`` by kind (the first ``MAX_LISTED_FINDINGS`` listed)."""
    found: dict[str, int] = {}
    for ref in refs:
        found[ref.kind.value] = found.get(ref.kind.value, 0) + 1
    return CheckResult(
        check=check,
        found=found,
        new=sum(1 for r in refs if r.new),
        findings=list(refs[:MAX_LISTED_FINDINGS]),
        **fields,
    )
