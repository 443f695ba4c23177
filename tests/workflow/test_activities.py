"""The Cotpay activities with the real client against the real sandbox on loopback."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cotpay_activities import CotpayActivities
from activities.models import CreateOrderInput, CustomerCheckInput, OrderCallInput, SignUpInput
from cotpay.client import CotpayClient
from cotpay.ipn import IpnStep, ipn_url
from sandbox.testing import RunningSandbox
from tests.workflow.helpers import BUYER, IPN_SECRET, SELLER


def _env(attempt: int = 1) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    return env


def _create(ref: str, amount: int = 60_000) -> CreateOrderInput:
    return CreateOrderInput(
        order_ref=ref, seller_id=SELLER, buyer_id=BUYER, amount=amount, description="t"
    )


async def _raises(call: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await call
    return caught.value


async def test_create_sends_order_code_and_ipn_url(
    acts: CotpayActivities, sandbox: RunningSandbox
) -> None:
    created = await _env().run(acts.create_order, _create("ref-1"))
    assert not created.adopted
    order = (await sandbox.admin.get(f"/sandbox/orders/{created.id_order}")).json()
    assert order["orderCode"] == "ref-1"
    url = order["ipnUrls"]["create"]
    assert url.startswith("http://127.0.0.1:9/ipn/ref-1/create")
    assert "test-ipn-secret" not in url


async def test_repeated_create_is_adopted_only_on_a_retry(acts: CotpayActivities) -> None:
    first = await _env().run(acts.create_order, _create("ref-2"))
    again = await _env(attempt=2).run(acts.create_order, _create("ref-2"))
    assert again.adopted
    assert again.id_order == first.id_order

    error = await _raises(_env().run(acts.create_order, _create("ref-2")))
    assert error.type == "OrderCodeExists"
    assert error.non_retryable
    assert error.details[0]["code"] == 10400
    assert error.details[0]["data"]["order"]["idOrder"] == first.id_order

    different = await _raises(_env(attempt=2).run(acts.create_order, _create("ref-2", 70_000)))
    assert different.type == "OrderCodeExists"


async def test_codes_become_typed_application_errors(acts: CotpayActivities) -> None:
    unknown = await _raises(
        _env().run(
            acts.customer_id,
            CustomerCheckInput(order_ref="r", seller_id="S9999999", buyer_id=BUYER),
        )
    )
    assert (unknown.type, unknown.non_retryable) == ("SellerNotFound", True)
    assert unknown.details[0]["code"] == 10200

    missing = await _raises(
        _env().run(
            acts.payment,
            OrderCallInput(order_ref="r", id_order=9_999_999, seller_id=SELLER, buyer_id=BUYER),
        )
    )
    assert missing.type == "OrderNotFound"


async def test_invalid_request_is_not_retried(acts: CotpayActivities) -> None:
    bad = await _raises(
        _env().run(
            acts.sign_up,
            SignUpInput(order_ref="r", name="Lan", email="lan@example.vn", phone="not-a-phone"),
        )
    )
    assert (bad.type, bad.non_retryable) == ("InvalidRequest", True)
    assert "not-a-phone" not in str(bad)
    assert "lan@example.vn" not in str(bad)


async def test_transport_errors_are_retryable(sandbox: RunningSandbox) -> None:
    settings = sandbox.cotpay_settings().model_copy(update={"base_url": "http://127.0.0.1:9"})
    async with CotpayClient(settings) as client:
        acts = CotpayActivities(client, public_url="http://127.0.0.1:9", ipn_secret=IPN_SECRET)
        error = await _raises(
            _env().run(
                acts.customer_id,
                CustomerCheckInput(order_ref="r", seller_id=SELLER, buyer_id=BUYER),
            )
        )
    assert (error.type, error.non_retryable) == ("Transport", False)


def test_ipn_url_is_built_from_the_activity_settings() -> None:
    acts = CotpayActivities(
        None,  # type: ignore[arg-type]
        public_url="https://shop.example/",
        ipn_secret=IPN_SECRET,
    )
    url = acts._ipn("ref-9", IpnStep.PAYMENT)
    assert url == ipn_url("https://shop.example", "test-ipn-secret", "ref-9", "payment")
    assert url.startswith("https://shop.example/ipn/ref-9/payment?sig=")
