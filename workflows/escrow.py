"""``EscrowOrderWorkflow``: one Cotpay escrow order as one durable workflow (docs/workflow.md).

This class holds only the side effects: the Cotpay calls (activities), the waits (a message
raced against a timer with ``workflow.wait_condition(..., timeout=...)``), the search-attribute
upserts, the current details and the log lines. Every decision, status change and message rule
is in the order record, ``workflows/state_machine.py``; the run loop executes the step of the
current status, asking the record what to call or wait for and telling it each outcome.

Messages: the IPN signal, the four updates with validators and their fire-and-forget signal
twins, the ``payment_info`` update and the ``status`` query. Each of ``confirm_delivery``,
``open_dispute``, ``cancel`` and ``operator_action`` is both an update and a signal of the same
name (Temporal keeps signal and update names apart; the SDK registers both). ``<name>_signal``
are aliases of the signals. A signal cannot be refused: one that its rule refuses is recorded in
the timeline (``signal_rejected``) and changes nothing else. Updates return the order view;
repeating an update whose effect already happened returns the view without an error
(``workflows/rules.py``). Each update handler runs its rule again (another message may have
moved the order since the validator accepted it); a ``Refused`` raised there fails the update.

The order store (docs/store.md, The write path): from the patch ``order-store`` on, one
background writer (``_write_store``) sends the order's timeline and view to the store at every
change, one ``store.record`` activity at a time, batching what accumulated meanwhile. Nothing
else waits for it: no Cotpay call, timer or message. Before the workflow returns it waits until
the store has everything; an update handler waits (at most ``STORE_SYNC_WAIT``) until the store
shows its effect, so a read from the store right after the answer sees it. From the patch
``lean-history`` on (``_write_store_lean``), each write is tried once as a local activity first
(one marker, no activity task), never in a workflow task that schedules a Cotpay call, and the
update handlers wait without a timer unless their write goes out as the regular activity.

Money moved (docs/workflow.md, patch ``money-moved-guard``; finding F1): once a PAID_OUT or
REFUNDED IPN is recorded after a call of its step, operator actions on a NEEDS_ATTENTION order
are refused, an operator ``cancel`` is refused once a HOLDING was recorded, and the order ends
PAID_OUT / REFUNDED instead of issuing a payout or return request (and when a linger ends).
Return rejections in flight (patch ``return-rejection-in-flight``): a RETURN_REJECTED that
arrives while the return request is in flight leaves the return pending. Both patches are asked
only when they change what happens.

IPN checks (docs/workflow.md, IPNs): from the patch ``ipn-amount-check`` on, a HOLDING or
REFUNDED IPN whose amount or idOrder differs from the order's never moves it to HELD or
REFUNDED (``state_machine.ipn_mismatch``). The patch is asked only when such an IPN arrives.
Early outcomes (patch ``early-outcome-ipn``; findings F2, F3): a PAID_OUT recorded before any
payout call, or a REFUNDED before any return request, is recorded as ``ipn_early`` and never
counts as the outcome of a later call; asked only when such an IPN arrives.

Versioning: any change to the commands this code issues goes behind ``workflow.patched`` and the
replay test over ``tests/replay/histories`` must stay green (docs/workflow.md). Orders started
since ``lean-history`` record only that patch's marker and have every earlier patch's behaviour
without asking it (``self._lean``); older orders ask each patch as they always did.

Search attributes (patch ``coalesce-search-attributes``): each upsert is a history event and a
visibility write, so orders started since this patch keep the record's search updates pending
and upsert them once, merged, before the workflow blocks (a wait that does not end at once), before
a money call (payout, return), at the end, and at the end of a message handler unless the wait
the run loop is blocked in has just ended (it then flushes at its own next point). Cotpay's
creation calls run between two flushes, so a new order becomes searchable by its ids when it
waits for payment (docs/workflow.md, docs/benchmarks.md). Orders started before it upsert at
every change, as they always did.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel
    from temporalio.common import SearchAttributeUpdate

    from store.models import OrderWrite
    from workflows import calls, store_writes
    from workflows.models import (
        WORKFLOW_TYPE,
        CancelRequest,
        DeliveryConfirmation,
        DisputeRequest,
        EscrowStatus,
        IpnSignal,
        OperatorAction,
        OrderInput,
        OrderView,
        PaymentInfo,
    )
    from workflows.pseudonym import search_id_hex_salt
    from workflows.search_attributes import (
        BUYER_ID,
        COTPAY_ORDER_ID,
        ESCROW_AMOUNT,
        ESCROW_STATUS,
        PAYOUT_NOT_BEFORE,
        SELLER_ID,
    )
    from workflows.state_machine import (
        AttentionRaised,
        Details,
        Effect,
        OrderRecord,
        Reply,
        SearchUpdate,
        Wait,
    )
    from workflows.store_writes import StoreOutbox

S = EscrowStatus
ORDER_STORE_PATCH = "order-store"
# One patch for every order started since it: local-first store writes that never share a
# workflow task with a Cotpay call, and the behaviour of every earlier patch without asking each
# (one marker instead of one per patch; docs/workflow.md, Versioning).
LEAN_PATCH = "lean-history"
IPN_CHECK_PATCH = "ipn-amount-check"
MONEY_GUARD_PATCH = "money-moved-guard"
RETURN_REJECTION_PATCH = "return-rejection-in-flight"
EARLY_OUTCOME_PATCH = "early-outcome-ipn"
REPEATED_DELIVERY_PATCH = "repeated-delivery"
# How long an update waits for the order store to show its effect (read-your-writes); an update
# answers after this even while the store is down.
STORE_SYNC_WAIT = timedelta(seconds=3)
A = TypeVar("A", bound=BaseModel)
COALESCE_SEARCH = "coalesce-search-attributes"
_FLUSHED_BEFORE: tuple[object, ...] = (calls.PAYMENT, calls.RETURN_REQUEST)
R = TypeVar("R", bound=BaseModel)


@workflow.defn(name=WORKFLOW_TYPE)
class EscrowOrderWorkflow:
    @workflow.init
    def __init__(self, inp: OrderInput) -> None:
        self._coalesce = False
        self._pending: SearchUpdate | None = None
        self._blocked_in: Wait | None = None
        # Asked once, here: an order replaying from before the patch stays on the old code.
        self._lean = workflow.patched(LEAN_PATCH)
        # The history length of the workflow task that last scheduled a Cotpay call (lean).
        self._call_task = -1
        # Update handlers waiting for the store to show their effect (lean).
        self._sync_waiting = 0
        self._o = OrderRecord(
            inp=inp,
            status=S.CREATING,
            status_since=workflow.now(),
            on_effect=self._effect,
            ipn_checks=self._ipn_checks,
            money_guard=self._money_guard,
            return_guard=self._return_guard,
            early_guard=self._early_guard,
            repeat_guard=self._repeat_guard,
        )
        # Orders started before the patch (they replay without its marker) never write the
        # store; every order started after it writes from its first event.
        self._store: StoreOutbox | None = None
        if self._lean or workflow.patched(ORDER_STORE_PATCH):
            self._store = StoreOutbox(created_at=workflow.now(), merchant=inp.merchant)
        self._store_writer: asyncio.Task[None] | None = None

    @workflow.run
    async def run(self, inp: OrderInput) -> OrderView:
        self._coalesce = self._lean or workflow.patched(COALESCE_SEARCH)
        self._o.started(workflow.now())
        if self._store is not None:
            self._store_writer = asyncio.create_task(self._write_store(self._store))
        steps: dict[EscrowStatus, Callable[[], Awaitable[bool]]] = {
            S.CREATING: self._creating,
            S.AWAITING_PAYMENT: self._awaiting_payment,
            S.HELD: self._held,
            S.DELIVERED: self._delivered,
            S.PAYING_OUT: self._paying_out,
            S.PAID_OUT: self._paid_out,
            S.RETURN_REQUESTED: self._returning,
            S.NEEDS_ATTENTION: self._needs_attention,
            S.EXPIRED: self._linger,
            S.CANCELLED: self._linger,
        }
        while (step := steps.get(self._o.status)) is not None:
            if await step():
                break
        self._o.finished()
        self._flush()
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and self._store_idle()
        )
        if self._store_writer is not None:
            self._store_writer.cancel()
        return self._o.view()

    # --- the order store ---------------------------------------------------------------------

    async def _write_store(self, outbox: StoreOutbox) -> None:
        """The order store's one writer: whenever the view or timeline changed, send one write
        with everything the store lacks, wait for it, repeat. Retries are unlimited
        (``store_writes.RETRY``): a store outage delays only this coroutine."""
        if self._lean:
            await self._write_store_lean(outbox)
            return
        while True:
            await workflow.wait_condition(lambda: outbox.pending(self._o.view()))
            # Let the steps this activation woke finish first, so that one write carries them.
            await workflow.wait_condition(lambda: True)
            write = outbox.next_write(self._o.view())
            if write is None:
                continue
            await self._write_regular(write)
            outbox.stored(write)

    async def _write_store_lean(self, outbox: StoreOutbox) -> None:
        """The writer of patch ``lean-history`` (docs/store.md, The write path):

        * each write is tried once as a local activity (one marker event, no activity task
          round trip), bounded by ``store_writes.LOCAL_TIMEOUT``; if that attempt fails, the
          same write goes out as the regular activity with unlimited retries, and so do the
          next ones until one succeeds (``outbox.degraded`` meanwhile), so an outage never
          holds a workflow task open after its first failed attempt;
        * a local attempt holds its workflow task, so it never runs in a task that scheduled a
          Cotpay call: such a write waits for the next task, at most ``store_writes.DEFER``
          (a timer), or, when an update waits for it, goes out at once as the regular activity
          beside the call; a Cotpay call is never held back by the store, nor an update's
          answer by a Cotpay call;
        * while the order is being created (its Cotpay creation calls in flight) nothing is
          written unless an update waits for the store: the creation's entries go out in one
          write when it ends, with the payment details.
        """
        while True:
            await workflow.wait_condition(
                lambda: self._may_write() and outbox.pending(self._o.view())
            )
            # Let the steps this activation woke finish first, so that one write carries them.
            await workflow.wait_condition(lambda: True)
            beside_call = False
            if self._called_in_this_task():
                if self._sync_waiting > 0:
                    # An update waits for this write: neither it nor the Cotpay call waits for
                    # the other; the regular activity runs beside the call.
                    beside_call = True
                else:
                    with contextlib.suppress(TimeoutError):
                        await workflow.wait_condition(
                            lambda: not self._called_in_this_task(), timeout=store_writes.DEFER
                        )
                    # Again: what the task that ended the wait woke goes into the same write.
                    await workflow.wait_condition(lambda: True)
            write = outbox.next_write(self._o.view())
            if write is None:
                continue
            if not (beside_call or outbox.degraded):
                try:
                    await workflow.execute_local_activity_method(
                        store_writes.RECORD,
                        write,
                        start_to_close_timeout=store_writes.LOCAL_TIMEOUT,
                        schedule_to_close_timeout=store_writes.LOCAL_TIMEOUT,
                        retry_policy=store_writes.LOCAL_RETRY,
                    )
                    outbox.stored(write)
                    continue
                except FailureError as err:
                    # A local attempt's failure arrives as the activity's own error (or a
                    # timeout), not always wrapped in ActivityError.
                    if isinstance(err, CancelledError):
                        raise
                    outbox.degraded = True
            outbox.regular = True
            await self._write_regular(write)
            outbox.stored(write)

    async def _write_regular(self, write: OrderWrite) -> None:
        await workflow.execute_activity_method(
            store_writes.RECORD,
            write,
            start_to_close_timeout=store_writes.START_TO_CLOSE,
            retry_policy=store_writes.RETRY,
        )

    def _may_write(self) -> bool:
        """Lean writer: not while the order is being created, unless an update waits."""
        return self._sync_waiting > 0 or self._o.status is not S.CREATING

    def _called_in_this_task(self) -> bool:
        """A Cotpay call was scheduled in the current workflow task (the history length is the
        task's, the same in every activation of it, and grows with each new task)."""
        return self._call_task == workflow.info().get_current_history_length()

    def _store_idle(self) -> bool:
        """The store has the whole order (always true for an order from before the patch)."""
        return self._store is None or self._store.idle(self._o.view())

    async def _store_synced(self, answer: R) -> R:
        """Read-your-writes: ``answer`` (the state right after an update applied), once the
        store holds the timeline as it was then, or after ``STORE_SYNC_WAIT`` at most.

        Patch ``lean-history``: no timer unless the write goes out as the regular activity. A
        local attempt is bounded (``LOCAL_TIMEOUT``; the writer never defers a write an update
        waits for), so the answer waits until the store holds the entries or an attempt has
        failed (``outbox.degraded``: while the store is down, answers do not wait for it). A
        write sent as the regular activity (``outbox.regular``: beside a Cotpay call of the same
        task) is waited for at most ``STORE_SYNC_WAIT``, a timer."""
        outbox = self._store
        seq = len(self._o.timeline)
        if outbox is None or outbox.has(seq):
            return answer
        if self._lean:
            self._sync_waiting += 1
            try:
                await workflow.wait_condition(
                    lambda: outbox.has(seq) or outbox.degraded or outbox.regular
                )
                if not (outbox.has(seq) or outbox.degraded):
                    with contextlib.suppress(TimeoutError):
                        await workflow.wait_condition(
                            lambda: outbox.has(seq) or outbox.degraded, timeout=STORE_SYNC_WAIT
                        )
            finally:
                self._sync_waiting -= 1
            return answer
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: outbox.has(seq), timeout=STORE_SYNC_WAIT)
        return answer

    # The rules of the earlier patches: orders started since ``lean-history`` have them all
    # without asking (no marker); older orders ask each patch where it changes what happens.

    def _ipn_checks(self) -> bool:
        return self._lean or workflow.patched(IPN_CHECK_PATCH)

    def _money_guard(self) -> bool:
        """In an update validator (read-only: no patch marker can be written) the new, stricter
        rule applies: a refusal there leaves no trace in history, and the handler asks the patch
        itself, so it never refuses what the validator accepted."""
        if self._lean or workflow.unsafe.is_read_only():
            return True
        return workflow.patched(MONEY_GUARD_PATCH)

    def _return_guard(self) -> bool:
        return self._lean or workflow.patched(RETURN_REJECTION_PATCH)

    def _early_guard(self) -> bool:
        return self._lean or workflow.patched(EARLY_OUTCOME_PATCH)

    def _repeat_guard(self) -> bool:
        """As ``_money_guard``: in an update validator the new rule applies (it accepts; the
        handler then asks the patch, and an update the old rule refused never reached a handler
        in an older history). A signal asks the patch, so older histories keep their
        ``signal_rejected``."""
        if self._lean or workflow.unsafe.is_read_only():
            return True
        return workflow.patched(REPEATED_DELIVERY_PATCH)

    # --- side effects ----------------------------------------------------------------------

    def _effect(self, effect: Effect) -> None:
        """Carry out what the order record asks for, at the moment it asks."""
        if isinstance(effect, SearchUpdate):
            if self._coalesce:
                self._pending = _merged(self._pending, effect)
            else:
                workflow.upsert_search_attributes(self._search_attributes(effect))
        elif isinstance(effect, Details):
            workflow.set_current_details(effect.line)
        elif isinstance(effect, AttentionRaised):
            workflow.logger.warning(
                "order needs attention: %s (step %s)",
                effect.reason,
                effect.step,
                extra=self._log_extra(effect.step),
            )

    def _flush(self) -> None:
        """Upsert the pending search update, if any (one event for several changes)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            workflow.upsert_search_attributes(self._search_attributes(pending))

    def _handled(self) -> None:
        """The end of a message handler: flush, unless the run loop's wait has just ended (the
        run loop goes on in this same activation and flushes at its own next point)."""
        if self._blocked_in is None or not self._blocked_in.done():
            self._flush()

    def _search_attributes(self, values: SearchUpdate) -> list[SearchAttributeUpdate[Any]]:
        inp = self._o.inp
        updates: list[SearchAttributeUpdate[Any]] = [
            ESCROW_STATUS.value_set(values.status.value),
            SELLER_ID.value_set(self._search_id(inp.seller_id)),
            BUYER_ID.value_set(self._search_id(inp.buyer_id)),
            ESCROW_AMOUNT.value_set(inp.amount),
        ]
        if values.cotpay_order_id is not None:
            updates.append(COTPAY_ORDER_ID.value_set(values.cotpay_order_id))
        if values.payout_not_before is not None:
            updates.append(PAYOUT_NOT_BEFORE.value_set(values.payout_not_before))
        return updates

    def _search_id(self, cotpay_id: str) -> str:
        salt = self._o.inp.search_salt
        return search_id_hex_salt(cotpay_id, salt) if salt else cotpay_id

    def _log_extra(self, step: str | None) -> dict[str, Any]:
        """Order context for ``workflow.logger`` (replay-safe; see cotpay.logs)."""
        o = self._o
        return {"orderRef": o.inp.order_ref, "cotpayOrderId": o.cotpay_order_id, "step": step}

    async def _wait(self, wait: Wait) -> bool:
        """Wait until ``wait.done()`` or its deadline; True when ``done()`` holds."""
        remaining = wait.until - workflow.now() if wait.until is not None else None
        if not wait.done() and (remaining is None or remaining > timedelta(0)):
            self._flush()
        self._blocked_in = wait
        try:
            if remaining is None:
                await workflow.wait_condition(wait.done)
                return True
            if remaining > timedelta(0):
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(wait.done, timeout=remaining)
        finally:
            self._blocked_in = None
        return wait.done()

    async def _call(self, call: calls.Call[A, R], arg: A) -> R | calls.Failure:
        if call in _FLUSHED_BEFORE:
            self._flush()
        self._call_task = workflow.info().get_current_history_length()
        try:
            return await workflow.execute_activity_method(
                call.activity,
                arg,
                start_to_close_timeout=calls.START_TO_CLOSE,
                schedule_to_close_timeout=call.schedule_to_close,
                retry_policy=calls.RETRY,
            )
        except ActivityError as err:
            failure = calls.failure_of(call, err)
            self._o.call_failed(workflow.now(), failure)
            return failure

    # --- the steps: one per status; True when the workflow is finished ---------------------

    async def _creating(self) -> bool:
        o = self._o
        o.creating()
        if o.needs_cotpay_order:
            if not await self._check_users():
                return False
            created = await self._call(calls.CREATE_ORDER, o.create_order_input())
            if isinstance(created, calls.Failure):
                o.create_failed(workflow.now(), created)
                return False
            o.order_created(workflow.now(), created)
        if o.needs_verify:
            verified = await self._call(calls.VERIFY_ORDER, o.verify_order_input())
            if isinstance(verified, calls.Failure):
                o.creation_failed(workflow.now(), verified)
                return False
            o.order_verified(workflow.now(), verified)
        o.creation_done(workflow.now())
        return False

    async def _check_users(self) -> bool:
        o = self._o
        checked = await self._call(calls.CUSTOMER_ID, o.customer_check())
        if not isinstance(checked, calls.Failure):
            return True
        if o.should_sign_up(checked):
            signed = await self._call(calls.SIGN_UP, o.sign_up_input())
            if not isinstance(signed, calls.Failure):
                o.buyer_signed_up(workflow.now())
                return True
            if o.should_check_buyer_again(signed) and not isinstance(
                await self._call(calls.CUSTOMER_ID, o.customer_check()), calls.Failure
            ):
                o.buyer_exists(workflow.now())
                return True
            checked = signed
        o.creation_failed(workflow.now(), checked)
        return False

    async def _awaiting_payment(self) -> bool:
        await self._wait(self._o.payment_wait())
        self._o.payment_wait_over(workflow.now())
        return False

    async def _linger(self) -> bool:
        wait = self._o.linger_wait()
        if wait is None:
            return True
        await self._wait(wait)
        return self._o.linger_over(workflow.now())

    async def _held(self) -> bool:
        await self._wait(self._o.held_wait())
        self._o.held_wait_over(workflow.now())
        return False

    async def _delivered(self) -> bool:
        await self._wait(self._o.delivered_wait())
        self._o.delivered_wait_over(workflow.now())
        return False

    async def _paying_out(self) -> bool:
        o = self._o
        o.paying_out()
        while True:
            slot = o.payout_slot_wait(workflow.now())
            if slot is not None and await self._wait(slot):
                return False
            if o.ends_by_ipn(workflow.now()):
                return True
            paid = await self._call(calls.PAYMENT, o.payout_call(workflow.now()))
            if not isinstance(paid, calls.Failure):
                o.payout_succeeded(workflow.now())
                return False
            if not o.payout_failed(workflow.now(), paid):
                return False

    async def _paid_out(self) -> bool:
        await self._wait(self._o.paid_out_wait())
        return self._o.paid_out_wait_over(workflow.now())

    async def _returning(self) -> bool:
        o = self._o
        if o.needs_return_call:
            if o.ends_by_ipn(workflow.now()):
                return True
            asked = await self._call(calls.RETURN_REQUEST, o.return_call(workflow.now()))
            if isinstance(asked, calls.Failure):
                o.return_call_failed(workflow.now(), asked)
                return False
            o.return_requested(workflow.now())
        await self._wait(o.return_wait())
        o.return_wait_over(workflow.now())
        return False

    async def _needs_attention(self) -> bool:
        await self._wait(self._o.attention_wait())
        return self._o.attention_wait_over(workflow.now())

    # --- IPN, query, payment_info -----------------------------------------------------------

    @workflow.signal
    def ipn(self, sig: IpnSignal) -> None:
        if not self._o.record_ipn(sig, workflow.now()):
            workflow.logger.info(
                "duplicate IPN ignored: %s %s",
                sig.step.value,
                sig.body.status,
                extra=self._log_extra(sig.step.value),
            )
        self._handled()

    @workflow.query
    def status(self) -> OrderView:
        return self._o.view()

    @workflow.update
    async def payment_info(self) -> PaymentInfo:
        await workflow.wait_condition(lambda: self._o.creation_settled)
        self._handled()
        return await self._store_synced(self._o.payment_info())

    # --- updates -----------------------------------------------------------------------------

    @workflow.update
    async def confirm_delivery(self, msg: DeliveryConfirmation) -> OrderView:
        self._o.receive(workflow.now(), msg)
        self._handled()
        return await self._store_synced(self._o.view())

    @confirm_delivery.validator
    def _validate_delivery(self, msg: DeliveryConfirmation) -> None:
        self._o.check(msg)

    @workflow.update
    async def open_dispute(self, msg: DisputeRequest) -> OrderView:
        self._o.receive(workflow.now(), msg)
        self._handled()
        return await self._store_synced(self._o.view())

    @open_dispute.validator
    def _validate_dispute(self, msg: DisputeRequest) -> None:
        self._o.check(msg)

    @workflow.update
    async def cancel(self, msg: CancelRequest) -> OrderView:
        if self._o.receive(workflow.now(), msg) is Reply.ACCEPTED:
            self._handled()
            await workflow.wait_condition(lambda: self._o.status is not S.CREATING)
        self._handled()
        return await self._store_synced(self._o.view())

    @cancel.validator
    def _validate_cancel(self, msg: CancelRequest) -> None:
        self._o.check(msg)

    @workflow.update
    async def operator_action(self, msg: OperatorAction) -> OrderView:
        self._o.receive(workflow.now(), msg)
        self._handled()
        return await self._store_synced(self._o.view())

    @operator_action.validator
    def _validate_operator(self, msg: OperatorAction) -> None:
        self._o.check(msg)

    # --- the same four as fire-and-forget signals --------------------------------------------

    @workflow.signal(name="confirm_delivery")
    def confirm_delivery_signal(self, msg: DeliveryConfirmation) -> None:
        self._o.receive_signal(workflow.now(), msg)
        self._handled()

    @workflow.signal(name="open_dispute")
    def open_dispute_signal(self, msg: DisputeRequest) -> None:
        self._o.receive_signal(workflow.now(), msg)
        self._handled()

    @workflow.signal(name="cancel")
    def cancel_signal(self, msg: CancelRequest) -> None:
        self._o.receive_signal(workflow.now(), msg)
        self._handled()

    @workflow.signal(name="operator_action")
    def operator_action_signal(self, msg: OperatorAction) -> None:
        self._o.receive_signal(workflow.now(), msg)
        self._handled()

    # Aliases under the names of the first contract (before same-name signals were confirmed).

    @workflow.signal(name="confirm_delivery_signal")
    def confirm_delivery_signal_alias(self, msg: DeliveryConfirmation) -> None:
        self.confirm_delivery_signal(msg)

    @workflow.signal(name="open_dispute_signal")
    def open_dispute_signal_alias(self, msg: DisputeRequest) -> None:
        self.open_dispute_signal(msg)

    @workflow.signal(name="cancel_signal")
    def cancel_signal_alias(self, msg: CancelRequest) -> None:
        self.cancel_signal(msg)

    @workflow.signal(name="operator_action_signal")
    def operator_action_signal_alias(self, msg: OperatorAction) -> None:
        self.operator_action_signal(msg)


def _merged(earlier: SearchUpdate | None, later: SearchUpdate) -> SearchUpdate:
    """One update with the effect of ``earlier`` then ``later`` (None leaves a value as it is)."""
    if earlier is None:
        return later
    return SearchUpdate(
        later.status,
        later.cotpay_order_id if later.cotpay_order_id is not None else earlier.cotpay_order_id,
        later.payout_not_before
        if later.payout_not_before is not None
        else earlier.payout_not_before,
    )
