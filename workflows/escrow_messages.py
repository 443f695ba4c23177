"""The messages of ``EscrowOrderWorkflow``: IPN signal, updates (with validators), their
fire-and-forget signal twins, the ``payment_info`` update and the ``status`` query.

Each of ``confirm_delivery``, ``open_dispute``, ``cancel`` and ``operator_action`` is both an
update and a signal of the same name (Temporal keeps signal and update names apart; the SDK
registers both). ``<name>_signal`` are aliases of the signals. A signal cannot be refused: one
that its validator would reject is recorded in the timeline (``signal_rejected``) and changes
nothing else. Updates return the order view; repeating an update whose effect already happened
returns the view without an error (``workflows/rules.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporalio.common import SearchAttributeUpdate

    from workflows import rules
    from workflows.models import (
        Attention,
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
    from workflows.order_record import OrderRecord
    from workflows.pseudonym import search_id_hex_salt
    from workflows.search_attributes import (
        BUYER_ID,
        COTPAY_ORDER_ID,
        ESCROW_AMOUNT,
        ESCROW_STATUS,
        PAYOUT_NOT_BEFORE,
        SELLER_ID,
    )
    from workflows.summary import details_line, summary_for

S = EscrowStatus


class EscrowMessages:
    def __init__(self, inp: OrderInput) -> None:
        self._o = OrderRecord(inp=inp, status=S.CREATING, status_since=workflow.now())

    # --- state changes shared by handlers and steps ------------------------------------------

    def _event(self, kind: str, detail: str = "", data: dict[str, Any] | None = None) -> None:
        self._o.event(workflow.now(), kind, detail, data)

    def _transition(self, status: EscrowStatus, detail: str) -> None:
        o = self._o
        if status not in (S.NEEDS_ATTENTION, S.FAILED):
            o.attention = None
        o.status = status
        o.status_since = workflow.now()
        self._event("status", detail)
        self._upsert()

    def _attention_for(self, reason: str, code: int | None, step: str | None) -> Attention:
        return Attention(reason=reason, code=code, since=workflow.now(), step=step)

    def _attention_needed(
        self, reason: str, code: int | None, step: str, data: dict[str, Any] | None = None
    ) -> None:
        o = self._o
        o.attention = self._attention_for(reason, code, step)
        o.attention_from = o.status
        if data:
            self._event("evidence", reason, data)
        workflow.logger.warning(
            "order needs attention: %s (step %s)", reason, step, extra=self._log_extra(step)
        )
        self._transition(S.NEEDS_ATTENTION, reason)

    def _log_extra(self, step: str | None) -> dict[str, Any]:
        """Order context for ``workflow.logger`` (replay-safe; see cotpay.logs)."""
        o = self._o
        return {"orderRef": o.inp.order_ref, "cotpayOrderId": o.cotpay_order_id, "step": step}

    def _waiting(
        self, text: str, since: datetime | None = None, until: datetime | None = None
    ) -> None:
        line = details_line(text, since, until) if since is not None else text
        self._o.waiting_for = line
        workflow.set_current_details(line)

    def _set_payout_not_before(self, moment: datetime) -> None:
        self._o.payout_not_before = moment
        self._upsert()

    def _search_id(self, cotpay_id: str) -> str:
        salt = self._o.inp.search_salt
        return search_id_hex_salt(cotpay_id, salt) if salt else cotpay_id

    def _upsert(self) -> None:
        o, inp = self._o, self._o.inp
        updates: list[SearchAttributeUpdate[Any]] = [
            ESCROW_STATUS.value_set(o.status.value),
            SELLER_ID.value_set(self._search_id(inp.seller_id)),
            BUYER_ID.value_set(self._search_id(inp.buyer_id)),
            ESCROW_AMOUNT.value_set(inp.amount),
        ]
        if o.cotpay_order_id is not None:
            updates.append(COTPAY_ORDER_ID.value_set(o.cotpay_order_id))
        if o.payout_not_before is not None:
            updates.append(PAYOUT_NOT_BEFORE.value_set(o.payout_not_before))
        workflow.upsert_search_attributes(updates)

    def _started(self) -> None:
        self._event("started", summary_for(self._o.inp))
        self._upsert()

    def _resume_after_retry(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    # --- IPN and query -----------------------------------------------------------------------

    @workflow.signal
    def ipn(self, sig: IpnSignal) -> None:
        if not self._o.record_ipn(sig, workflow.now()):
            workflow.logger.info(
                "duplicate IPN ignored: %s %s",
                sig.step.value,
                sig.body.status,
                extra=self._log_extra(sig.step.value),
            )

    @workflow.query
    def status(self) -> OrderView:
        return self._o.view()

    @workflow.update
    async def payment_info(self) -> PaymentInfo:
        await workflow.wait_condition(lambda: self._o.creation_settled)
        o = self._o
        return PaymentInfo(
            order_ref=o.inp.order_ref,
            status=o.status,
            cotpay_order_id=o.cotpay_order_id,
            payment=o.payment,
            error=o.attention,
        )

    # --- what each message does once accepted ------------------------------------------------

    def _apply_delivery(self, msg: DeliveryConfirmation) -> None:
        now = workflow.now()
        told = msg.delivered_at
        aware = told is not None and told.tzinfo is not None
        self._o.delivered_at = told if told is not None and aware and told <= now else now
        self._event("delivery_confirmed", msg.note)
        self._transition(S.DELIVERED, "delivery confirmed")

    def _apply_dispute(self, msg: DisputeRequest) -> None:
        self._event("dispute_opened", msg.reason)
        self._o.return_called = False
        self._transition(S.RETURN_REQUESTED, "dispute opened: requesting a return")

    def _apply_cancel(self, msg: CancelRequest) -> None:
        self._event("cancel_requested", msg.reason)
        if self._o.status is S.CREATING:
            self._o.cancel_requested = True
        else:
            self._transition(S.CANCELLED, "cancelled by the shop")

    def _apply_operator(self, msg: OperatorAction) -> None:
        self._event("operator_action", f"{msg.action} by {msg.operator or '?'}: {msg.note}")
        if msg.action == "retry":
            self._resume_after_retry()
        elif msg.action == "release":
            self._release()
        elif msg.action == "refund":
            self._o.return_called = False
            self._transition(S.RETURN_REQUESTED, "operator refund: requesting a return")
        else:
            self._transition(S.CANCELLED, "cancelled by an operator")

    def _as_signal(self, name: str, rule: Callable[[], bool], apply: Callable[[], None]) -> None:
        try:
            if rule():
                return
        except ValueError as err:
            self._event("signal_rejected", f"{name}: {err}")
            return
        apply()

    # --- updates -----------------------------------------------------------------------------
    # Each handler runs its rule again (another message may have moved the order since the
    # validator accepted this one); a ``Refused`` raised there fails the update.

    @workflow.update
    async def confirm_delivery(self, msg: DeliveryConfirmation) -> OrderView:
        if not rules.confirm_delivery(self._o.facts()):
            self._apply_delivery(msg)
        return self._o.view()

    @confirm_delivery.validator
    def _validate_delivery(self, msg: DeliveryConfirmation) -> None:
        rules.confirm_delivery(self._o.facts())

    @workflow.update
    async def open_dispute(self, msg: DisputeRequest) -> OrderView:
        if not rules.open_dispute(self._o.facts()):
            self._apply_dispute(msg)
        return self._o.view()

    @open_dispute.validator
    def _validate_dispute(self, msg: DisputeRequest) -> None:
        rules.open_dispute(self._o.facts())

    @workflow.update
    async def cancel(self, msg: CancelRequest) -> OrderView:
        if not rules.cancel(self._o.facts()):
            self._apply_cancel(msg)
            await workflow.wait_condition(lambda: self._o.status is not S.CREATING)
        return self._o.view()

    @cancel.validator
    def _validate_cancel(self, msg: CancelRequest) -> None:
        rules.cancel(self._o.facts())

    @workflow.update
    async def operator_action(self, msg: OperatorAction) -> OrderView:
        if not rules.operator_action(self._o.facts(), msg.action):
            self._apply_operator(msg)
        return self._o.view()

    @operator_action.validator
    def _validate_operator(self, msg: OperatorAction) -> None:
        rules.operator_action(self._o.facts(), msg.action)

    # --- the same four as fire-and-forget signals --------------------------------------------

    @workflow.signal(name="confirm_delivery")
    def confirm_delivery_signal(self, msg: DeliveryConfirmation) -> None:
        self._as_signal(
            "confirm_delivery",
            lambda: rules.confirm_delivery(self._o.facts()),
            lambda: self._apply_delivery(msg),
        )

    @workflow.signal(name="open_dispute")
    def open_dispute_signal(self, msg: DisputeRequest) -> None:
        self._as_signal(
            "open_dispute",
            lambda: rules.open_dispute(self._o.facts()),
            lambda: self._apply_dispute(msg),
        )

    @workflow.signal(name="cancel")
    def cancel_signal(self, msg: CancelRequest) -> None:
        self._as_signal(
            "cancel", lambda: rules.cancel(self._o.facts()), lambda: self._apply_cancel(msg)
        )

    @workflow.signal(name="operator_action")
    def operator_action_signal(self, msg: OperatorAction) -> None:
        self._as_signal(
            "operator_action",
            lambda: rules.operator_action(self._o.facts(), msg.action),
            lambda: self._apply_operator(msg),
        )

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
