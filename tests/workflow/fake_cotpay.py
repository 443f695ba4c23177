"""A scripted in-test Cotpay behind the real activity names (unit level: the workflow is real).

Each endpoint answers success by default; a test queues outcomes per activity name: a Cotpay
code (mapped to the same ``ApplicationError`` the real activities raise) or a transport error.
Every call is recorded with the (time-skipped) server time at which it was scheduled.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import activity

from activities.errors import application_error
from activities.models import (
    CallResult,
    CreateOrderInput,
    CreateOrderResult,
    CustomerCheckInput,
    OrderCallInput,
    SignUpInput,
    VerifyOrderInput,
)
from cotpay.codes import CotpayTransportError, error_for

PAYMENT_DATA = "https://pay.example/qr/1001"


@dataclass
class Call:
    name: str
    arg: Any
    at: datetime
    attempt: int


@dataclass
class FakeCotpay:
    next_id: int = 1001
    calls: list[Call] = field(default_factory=list)
    script: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    # A call named here answers only once its event is set (a call in flight, held open).
    gates: dict[str, asyncio.Event] = field(default_factory=dict)

    def fail(self, name: str, *codes: int, data: dict[str, Any] | None = None) -> None:
        for code in codes:
            self.script[name].append(error_for(code, f"code {code}", endpoint=name, data=data))

    def transport(self, name: str, times: int = 1) -> None:
        for _ in range(times):
            self.script[name].append(CotpayTransportError("connection reset", endpoint=name))

    def called(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    def _answer(self, name: str, arg: Any) -> None:
        info = activity.info()
        self.calls.append(Call(name, arg, info.current_attempt_scheduled_time, info.attempt))
        if self.script[name]:
            outcome = self.script[name].pop(0)
            raise application_error(outcome)

    @activity.defn(name="cotpay.customer_id")
    async def customer_id(self, inp: CustomerCheckInput) -> CallResult:
        self._answer("customer_id", inp)
        return CallResult(code=10100, message="Success")

    @activity.defn(name="cotpay.sign_up")
    async def sign_up(self, inp: SignUpInput) -> CallResult:
        self._answer("sign_up", inp)
        return CallResult(code=10100, message="Success", data=inp.phone)

    @activity.defn(name="cotpay.create_order")
    async def create_order(self, inp: CreateOrderInput) -> CreateOrderResult:
        self._answer("create_order", inp)
        id_order = self.next_id
        self.next_id += 1
        return CreateOrderResult(id_order=id_order, order={"idOrder": id_order})

    @activity.defn(name="cotpay.verify_order")
    async def verify_order(self, inp: VerifyOrderInput) -> CallResult:
        self._answer("verify_order", inp)
        return CallResult(code=10100, message="Success", data=PAYMENT_DATA)

    @activity.defn(name="cotpay.payment")
    async def payment(self, inp: OrderCallInput) -> CallResult:
        self._answer("payment", inp)
        return CallResult(code=10100, message="Success", data="payout-tx")

    @activity.defn(name="cotpay.return_request")
    async def return_request(self, inp: OrderCallInput) -> CallResult:
        self._answer("return_request", inp)
        gate = self.gates.get("return_request")
        if gate is not None:
            await gate.wait()
        return CallResult(code=10100, message="Success", data="return-tx")

    def activities(self) -> list[Any]:
        return [
            self.customer_id,
            self.sign_up,
            self.create_order,
            self.verify_order,
            self.payment,
            self.return_request,
        ]
