"""The sandbox's Cotpay: what each endpoint and admin action does to users, orders and ledger.

CHOICES where Cotpay is silent (also in docs/sandbox.md):
* sign-up with a phone that is already registered: 10500 with a field error on ``phone``.
* verify-order on an order that is already paid (or further): 10100 with the same payment URL,
  nothing changes (a retried call is harmless). After PAYMENT_FAILED it re-opens the payment.
* payment checks, in order: users exist (10200/10300), order exists (10700), ids match the order
  (11300), no other money call running on the order (11800), order paid out already (10100 again
  with the same transaction id, never a second payout), order held (else 10800: not paid yet,
  return pending, refunded), seller wallet (10900) and bank (11000) linked, payout rule (11100),
  forced failure (10800 with IPN ``PAYOUT_FAILED``), else the payout (10100, IPN ``PAID_OUT``).
* return-request needs a held order (else 11300: 10800 is not in its documented codes); a
  repeated request while pending, or after the refund, answers 10100 again. While a payout runs
  it answers 11800. The ``data`` of payment and return-request is the transaction id / status.
* IPN codes: 10100 for HOLDING, PAID_OUT, REFUNDED, RETURN_REJECTED; 10800 for the failures.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog

from cotpay.codes import SUCCESS, code_info
from cotpay.ipn import IpnStatus
from cotpay.models import (
    CreateOrderRequest,
    CustomerIdRequest,
    PaymentRequest,
    ReturnRequest,
    SignUpRequest,
    VerifyOrderRequest,
)
from cotpay.payout_window import payout_allowed
from sandbox.clock import SandboxClock, iso
from sandbox.domain import LedgerEntry, LedgerKind, Order, OrderStatus, User, payment_url
from sandbox.faults import FaultInjector
from sandbox.ipn_delivery import IpnDispatcher
from sandbox.store import Store

log = structlog.get_logger("sandbox")

PAYOUT_FAILED = 10800
_IPN_CODES: dict[str, int] = {
    IpnStatus.HOLDING: SUCCESS,
    IpnStatus.PAID_OUT: SUCCESS,
    IpnStatus.REFUNDED: SUCCESS,
    IpnStatus.RETURN_REJECTED: SUCCESS,
    IpnStatus.PAYMENT_FAILED: PAYOUT_FAILED,
    IpnStatus.PAYOUT_FAILED: PAYOUT_FAILED,
}
_IPN_MESSAGES: dict[str, str] = {
    IpnStatus.HOLDING: "Payment received; money held",
    IpnStatus.PAYMENT_FAILED: "Payment failed",
    IpnStatus.PAID_OUT: "Held money paid out to the seller",
    IpnStatus.PAYOUT_FAILED: "Payout failed",
    IpnStatus.REFUNDED: "Return approved; buyer refunded",
    IpnStatus.RETURN_REJECTED: "Return rejected by the seller; money still held",
}
_IPN_STEP: dict[str, str] = {
    IpnStatus.HOLDING: "verify",
    IpnStatus.PAYMENT_FAILED: "verify",
    IpnStatus.PAID_OUT: "payment",
    IpnStatus.PAYOUT_FAILED: "payment",
    IpnStatus.REFUNDED: "return",
    IpnStatus.RETURN_REJECTED: "return",
}


@dataclass
class Reply:
    """One Cotpay answer: ``{code, message, <field>: value}`` plus field errors on 10500."""

    code: int
    field: str
    value: Any = None
    message: str = ""
    errors: list[dict[str, str]] | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "message": self.message or code_info(self.code).message,
            self.field: self.value,
        }
        if self.errors is not None:
            out["errors"] = self.errors
        return out


class AdminError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.status = status
        self.error = error
        self.message = message


@dataclass
class SandboxService:
    store: Store
    clock: SandboxClock
    faults: FaultInjector
    ipn: IpnDispatcher
    payout_rule: str = "t1-1600"
    base_url: str = "http://127.0.0.1:8090"
    _locks: dict[int, asyncio.Lock] = field(default_factory=dict)

    # --- helpers ----------------------------------------------------------------------------

    def lock_for(self, id_order: int) -> asyncio.Lock:
        return self._locks.setdefault(id_order, asyncio.Lock())

    def _parties(self, partner_id: str, buyer_id: str, data_field: str) -> Reply | None:
        if partner_id not in self.store.users:
            return Reply(10200, data_field)
        if buyer_id not in self.store.users:
            return Reply(10300, data_field)
        return None

    def _order_for(self, id_order: int, partner_id: str, buyer_id: str) -> Order | Reply:
        """The order the call names, or the answer refusing it."""
        missing = self._parties(partner_id, buyer_id, "data")
        if missing is not None:
            return missing
        order = self.store.orders.get(id_order)
        if order is None:
            return Reply(10700, "data")
        if order.partnerId != partner_id or order.buyerId != buyer_id:
            return Reply(11300, "data")
        return order

    def _transaction_id(self, prefix: str, id_order: int) -> str:
        return f"{prefix}{id_order}-{secrets.token_hex(4).upper()}"

    def _notify(self, order: Order, status: IpnStatus, transaction_id: str | None) -> int | None:
        """Append an IPN record to ``order`` (not yet saved); returns its seq, None without URL."""
        url = order.ipnUrls.get(_IPN_STEP[status]) or order.ipnUrls.get("create")
        if not url:
            return None
        body = {
            "idOrder": order.idOrder,
            "status": status.value,
            "code": _IPN_CODES[status],
            "message": _IPN_MESSAGES[status],
            "amount": order.amount,
            "transactionId": transaction_id,
            "time": iso(self.clock.now()),
        }
        return self.ipn.add_record(order, status.value, url, body)

    def _commit(
        self,
        order: Order,
        seq: int | None,
        entry: LedgerEntry | None = None,
    ) -> bool:
        if entry is not None:
            if not self.store.record(entry, order):
                return False
        else:
            self.store.save_order(order)
        if seq is not None:
            self.ipn.schedule(order.idOrder, seq)
        return True

    def _entry(self, order: Order, kind: LedgerKind, transaction_id: str) -> LedgerEntry:
        return LedgerEntry(
            idOrder=order.idOrder,
            kind=kind,
            amount=order.amount,
            transactionId=transaction_id,
            at=self.clock.now(),
        )

    # --- Cotpay endpoints -------------------------------------------------------------------

    def sign_up(self, request: SignUpRequest) -> Reply:
        if request.phone in self.store.users:
            return Reply(
                10500,
                "data",
                errors=[{"field": "phone", "message": "phone number already registered"}],
            )
        user = User(
            id=request.phone,
            name=request.name,
            email=request.email,
            walletLinked=True,
            bankLinked=True,
            createdAt=self.clock.now(),
        )
        self.store.save_user(user)
        log.info("sandbox.sign_up")
        return Reply(SUCCESS, "data", user.id)

    def customer_id(self, request: CustomerIdRequest) -> Reply:
        missing = self._parties(request.partnerId, request.buyerId, "user")
        if missing is not None:
            return missing
        return Reply(SUCCESS, "user", self.store.users[request.buyerId].public())

    def create_order(self, request: CreateOrderRequest) -> Reply:
        missing = self._parties(request.partnerId, request.buyerId, "order")
        if missing is not None:
            return missing
        if request.orderCode is not None:
            existing = self.store.find_by_code(request.partnerId, request.orderCode)
            if existing is not None:
                log.info("sandbox.create_order.duplicate", idOrder=existing.idOrder)
                return Reply(10400, "order", existing.wire())
        order = Order(
            idOrder=self.store.next_order_id(),
            partnerId=request.partnerId,
            buyerId=request.buyerId,
            amount=request.amount,
            desc=request.desc,
            agentId=request.agentId,
            orderCode=request.orderCode,
            createdAt=self.clock.now(),
            ipnUrls={"create": request.ipnUrl},
        )
        self.store.save_order(order)
        log.info("sandbox.create_order", idOrder=order.idOrder, amount=order.amount)
        return Reply(SUCCESS, "order", order.wire())

    def verify_order(self, request: VerifyOrderRequest) -> Reply:
        order = self._order_for(request.idOrder, request.partnerId, request.buyerId)
        if isinstance(order, Reply):
            return order
        if order.status in (
            OrderStatus.CREATED,
            OrderStatus.AWAITING_PAYMENT,
            OrderStatus.PAYMENT_FAILED,
        ):
            order.payMethod = request.payMethod.value
            order.ipnUrls["verify"] = request.ipnUrl
            order.status = OrderStatus.AWAITING_PAYMENT
            self.store.save_order(order)
        log.info("sandbox.verify_order", idOrder=order.idOrder, status=order.status.value)
        return Reply(SUCCESS, "data", payment_url(self.base_url, order))

    async def payment(self, request: PaymentRequest) -> Reply:
        order = self._order_for(request.idOrder, request.partnerId, request.buyerId)
        if isinstance(order, Reply):
            return order
        lock = self.lock_for(order.idOrder)
        if lock.locked():
            return Reply(11800, "data")
        async with lock:
            await self.faults.latency()
            return self._payout(request)

    def _payout(self, request: PaymentRequest) -> Reply:
        current = self.store.orders[request.idOrder]
        if current.status is OrderStatus.PAID_OUT:
            log.info("sandbox.payment.repeat", idOrder=current.idOrder)
            return Reply(SUCCESS, "data", current.payoutTransactionId)
        if current.status is not OrderStatus.HOLDING or current.heldAt is None:
            return Reply(
                PAYOUT_FAILED, "data", message=f"Payment failed: order is {current.status.value}"
            )
        seller = self.store.users[current.partnerId]
        if not seller.walletLinked:
            return Reply(10900, "data")
        if not seller.bankLinked:
            return Reply(11000, "data")
        now = self.clock.now()
        if not payout_allowed(now, current.heldAt, rule=self.payout_rule):
            return Reply(11100, "data")
        order = current.model_copy(deep=True)
        order.ipnUrls["payment"] = request.ipnUrl
        if order.failNextPayouts > 0 or self.faults.payout_fails():
            order.failNextPayouts = max(order.failNextPayouts - 1, 0)
            order.failedPayouts += 1
            seq = self._notify(order, IpnStatus.PAYOUT_FAILED, None)
            self._commit(order, seq)
            log.warning("sandbox.payment.failed", idOrder=order.idOrder)
            return Reply(PAYOUT_FAILED, "data", message="Payment failed (sandbox fault)")
        transaction_id = self._transaction_id("PAY", order.idOrder)
        order.status = OrderStatus.PAID_OUT
        order.paidOutAt = now
        order.payoutTransactionId = transaction_id
        seq = self._notify(order, IpnStatus.PAID_OUT, transaction_id)
        if not self._commit(order, seq, self._entry(order, "payout", transaction_id)):
            log.warning("sandbox.payment.guard", idOrder=order.idOrder)
            return Reply(PAYOUT_FAILED, "data", message="Payment failed: money already moved")
        log.info("sandbox.payment", idOrder=order.idOrder, amount=order.amount)
        return Reply(SUCCESS, "data", transaction_id)

    async def return_request(self, request: ReturnRequest) -> Reply:
        order = self._order_for(request.idOrder, request.partnerId, request.buyerId)
        if isinstance(order, Reply):
            return order
        lock = self.lock_for(order.idOrder)
        if lock.locked():
            return Reply(11800, "data")
        async with lock:
            await self.faults.latency()
            current = self.store.orders[request.idOrder]
            if current.status in (OrderStatus.RETURN_PENDING, OrderStatus.REFUNDED):
                return Reply(SUCCESS, "data", current.status.value)
            if current.status is not OrderStatus.HOLDING:
                return Reply(
                    11300,
                    "data",
                    message=f"Information does not match: order is {current.status.value}",
                )
            current.status = OrderStatus.RETURN_PENDING
            current.ipnUrls["return"] = request.ipnUrl
            self.store.save_order(current)
            log.info("sandbox.return_request", idOrder=current.idOrder)
            return Reply(SUCCESS, "data", current.status.value)

    # --- admin ------------------------------------------------------------------------------

    def _admin_order(self, id_order: int) -> Order:
        order = self.store.orders.get(id_order)
        if order is None:
            raise AdminError(404, "order_not_found", f"no order {id_order}")
        return order

    def order_view(self, id_order: int) -> dict[str, Any]:
        order = self._admin_order(id_order)
        view = order.view(self.base_url)
        view["ledger"] = self.ledger_for(order)
        return view

    def ledger_for(self, order: Order) -> dict[str, Any]:
        entries = self.store.entries_for(order.idOrder)
        return {
            "idOrder": order.idOrder,
            "amount": order.amount,
            "status": order.status.value,
            "holds": [e.view() for e in entries if e.kind == "hold"],
            "payouts": [e.view() for e in entries if e.kind == "payout"],
            "refunds": [e.view() for e in entries if e.kind == "refund"],
        }

    def ledger(self) -> dict[str, Any]:
        return {"orders": [self.ledger_for(o) for o in self.store.orders.values()]}

    @asynccontextmanager
    async def _admin_change(
        self, id_order: int, needs: OrderStatus, what: str, first: str
    ) -> AsyncIterator[Order]:
        """A copy of the order to change under its money lock, once it is in state ``needs``."""
        self._admin_order(id_order)
        lock = self.lock_for(id_order)
        if lock.locked():
            raise AdminError(409, "order_busy", "another money call is running on this order")
        async with lock:
            current = self.store.orders[id_order]
            if current.status is not needs:
                raise AdminError(
                    409,
                    "invalid_state",
                    f"order is {current.status.value}; {what} needs {needs.value} "
                    f"(call {first} first)",
                )
            yield current.model_copy(deep=True)

    async def admin_pay(self, id_order: int, success: bool) -> dict[str, Any]:
        async with self._admin_change(
            id_order, OrderStatus.AWAITING_PAYMENT, "payment", "verify-order"
        ) as updated:
            if not success:
                updated.status = OrderStatus.PAYMENT_FAILED
                seq = self._notify(updated, IpnStatus.PAYMENT_FAILED, None)
                self._commit(updated, seq)
                log.info("sandbox.pay.failed", idOrder=id_order)
                return self.order_view(id_order)
            transaction_id = self._transaction_id("HLD", id_order)
            updated.status = OrderStatus.HOLDING
            updated.heldAt = self.clock.now()
            updated.holdTransactionId = transaction_id
            seq = self._notify(updated, IpnStatus.HOLDING, transaction_id)
            if not self._commit(updated, seq, self._entry(updated, "hold", transaction_id)):
                raise AdminError(409, "invalid_state", "the order's money is already held")
            log.info("sandbox.pay.held", idOrder=id_order, amount=updated.amount)
            return self.order_view(id_order)

    async def admin_return(self, id_order: int, approve: bool) -> dict[str, Any]:
        async with self._admin_change(
            id_order, OrderStatus.RETURN_PENDING, "a decision", "return-request"
        ) as updated:
            if not approve:
                updated.status = OrderStatus.HOLDING
                seq = self._notify(updated, IpnStatus.RETURN_REJECTED, None)
                self._commit(updated, seq)
                log.info("sandbox.return.rejected", idOrder=id_order)
                return self.order_view(id_order)
            transaction_id = self._transaction_id("RFD", id_order)
            updated.status = OrderStatus.REFUNDED
            updated.refundedAt = self.clock.now()
            updated.refundTransactionId = transaction_id
            seq = self._notify(updated, IpnStatus.REFUNDED, transaction_id)
            if not self._commit(updated, seq, self._entry(updated, "refund", transaction_id)):
                raise AdminError(409, "invalid_state", "the order's money has already moved")
            log.info("sandbox.return.refunded", idOrder=id_order, amount=updated.amount)
            return self.order_view(id_order)

    def fail_next_payout(self, id_order: int, count: int = 1) -> dict[str, Any]:
        order = self._admin_order(id_order)
        order.failNextPayouts += count
        self.store.save_order(order)
        return self.order_view(id_order)

    def put_user(
        self, user_id: str, name: str, wallet: bool, bank: bool
    ) -> tuple[dict[str, Any], bool]:
        existing = self.store.users.get(user_id)
        user = User(
            id=user_id,
            name=name,
            email=existing.email if existing else None,
            walletLinked=wallet,
            bankLinked=bank,
            createdAt=existing.createdAt if existing else self.clock.now(),
        )
        self.store.save_user(user)
        return user.public(), existing is None

    def get_user(self, user_id: str) -> dict[str, Any]:
        user = self.store.users.get(user_id)
        if user is None:
            raise AdminError(404, "user_not_found", "no such user")
        return user.public()

    def patch_user(self, user_id: str, wallet: bool | None, bank: bool | None) -> dict[str, Any]:
        user = self.store.users.get(user_id)
        if user is None:
            raise AdminError(404, "user_not_found", "no such user")
        if wallet is not None:
            user.walletLinked = wallet
        if bank is not None:
            user.bankLinked = bank
        self.store.save_user(user)
        return user.public()
