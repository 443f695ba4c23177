"""The message catalogue (``starter/i18n.py``): every text the service writes has a template, so
it is shown in Vietnamese; the language comes from ``Accept-Language``.

The texts are collected from the real producers: the state machine driven through every state,
message, IPN and step outcome of ``tests/unit/test_state_machine.py``, the message rules'
refusals, and the client's and gateway's errors.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from cotpay.ipn import IpnStatus
from starter import i18n
from starter.client import (
    InvalidState,
    OrderClosed,
    OrderConflict,
    OrderNotFound,
    StartTimeout,
    TemporalUnavailable,
    VisibilityUnavailable,
)
from tests.unit.test_state_machine import MESSAGE_CASES, MESSAGES, STATES, _step_of, at, ipn
from tests.unit.test_update_answers import first_step
from workflows.calls import Failure
from workflows.models import EscrowStatus
from workflows.rules import Refused
from workflows.state_machine import OrderRecord

S = EscrowStatus
# Timeline entries whose detail is the shop's or Cotpay's own text, shown as given.
AS_GIVEN = {"delivery_confirmed", "dispute_opened", "cancel_requested", "ipn"}


def records() -> Iterator[OrderRecord]:
    """Orders in every state, after every message and IPN, each step run once more."""
    for make in STATES.values():
        o = make()
        yield o
        o.finished()
        yield o
    for (state, message, _expected), as_signal in itertools.product(MESSAGE_CASES, (False, True)):
        o = STATES[state]()
        try:
            if as_signal:
                o.receive_signal(at(100), MESSAGES[message])
            else:
                o.receive(at(100), MESSAGES[message])
        except Refused:
            continue
        yield o
        first_step(o, at(100))
        yield o
    for state, status in itertools.product(STATES, IpnStatus):
        o = STATES[state]()
        wait, after = _step_of(o)
        o.record_ipn(ipn(status.value, now=at(100)), at(100))
        if wait is not None and wait.done():
            after(at(100))
        yield o
    for make in (STATES["EXPIRED"], STATES["CANCELLED"]):
        o = make()
        wait = o.linger_wait()
        assert wait is not None and wait.until is not None
        o.linger_over(wait.until)  # no late payment: watch_ended
        o.finished()
        yield o
    o = STATES["PAYING_OUT calling"]()
    o.payout_failed(at(50), Failure("payment", "PayoutTooEarly", 11100, "too early"))
    o.call_failed(
        at(50), Failure("payment", "Timeout", None, "no answer within 1:00:00 of retries")
    )
    yield o


def texts() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for o in records():
        view = o.view()
        found.add(("wait", view.waiting_for))
        if view.attention is not None:
            found.add(("reason", view.attention.reason))
        for event in view.timeline:
            if event.kind not in AS_GIVEN and event.detail:
                found.add((f"event:{event.kind}", event.detail))
    return found


TEXTS = sorted(texts())


def test_the_collection_reaches_every_kind_of_text() -> None:
    contexts = {context for context, _ in TEXTS}
    assert {"wait", "reason", "event:status", "event:started", "event:signal_rejected"} <= contexts
    assert {"event:watch_ended", "event:payout_too_early", "event:ipn_ignored"} <= contexts
    assert len(TEXTS) > 80


@pytest.mark.parametrize(("context", "text"), TEXTS)
def test_every_text_of_the_state_machine_has_a_vietnamese_form(context: str, text: str) -> None:
    if context == "wait":
        translated = i18n.waiting_for(text, "vi")
        head = text.split(" since ")[0]
        assert i18n.key_of("wait", head) is not None, head
    else:
        assert i18n.key_of(context, text) is not None, text
        translated = i18n.translate(context, text, "vi")
    assert translated != text, text
    assert i18n.translate(context, text, "en") == text


def refusals() -> Iterator[tuple[str, str]]:
    for state, message, expected in MESSAGE_CASES:
        if expected.startswith("!"):
            with pytest.raises(Refused) as caught:
                STATES[state]().check(MESSAGES[message])
            yield caught.value.code, caught.value.message.removeprefix(f"{caught.value.code}: ")


ERRORS = sorted(
    {
        *refusals(),
        (OrderNotFound("A1").code, OrderNotFound("A1").message),
        ("order_conflict", "order 'A1' already exists with different amount, sellerId"),
        (OrderClosed("A1").code, OrderClosed("A1").message),
        ("order_closed", "order 'A1' is finished (PAID_OUT)"),
        ("temporal_unavailable", "Temporal is unreachable"),
        ("temporal_unavailable", "Temporal did not take the signal in time"),
        ("temporal_unavailable", "order 'A1': confirm_delivery timed out"),
        ("temporal_unavailable", "order 'A1': no answer in time"),
        ("temporal_unavailable", "order 'A1': status query failed"),
        ("start_timeout", "order 'A1': no payment data within 30s; repeat the same request"),
        ("visibility_unavailable", "this Temporal server cannot list orders by EscrowStatus"),
        ("unauthorized", "missing or wrong API key (Authorization: Bearer <key>)"),
        ("body_too_large", "request bodies are limited to 65536 bytes"),
        ("invalid_request", "bad Content-Length header"),
        ("invalid_request", "the request is not valid (2 problem(s))"),
        ("cotpay_refused", "customer_id: SellerNotFound (10200): seller not found"),
        ("order_failed", "the order could not be created"),
        ("not_found", "Not Found"),
        ("method_not_allowed", "Method Not Allowed"),
        ("internal_error", "internal error"),
        ("bad_signature", "the IPN signature does not match"),
    }
)  # fmt: skip


@pytest.mark.parametrize(("code", "message"), ERRORS)
def test_every_error_message_has_a_vietnamese_form(code: str, message: str) -> None:
    assert i18n.key_of(f"error:{code}", message) is not None, message
    assert i18n.error_message(code, message, "vi") != message
    assert i18n.error_message(code, message, "en") == message


def test_the_client_errors_say_what_the_catalogue_expects() -> None:
    """The client's own sentences, not copies, for the errors built from arguments."""
    for error in (
        OrderNotFound("A1"),
        OrderConflict("A1", ["amount"]),
        OrderClosed("A1"),
        TemporalUnavailable("Temporal is unreachable"),
        StartTimeout("order 'A1': no payment data within 30s; repeat the same request"),
        VisibilityUnavailable("this Temporal server cannot list orders by EscrowStatus"),
        InvalidState("invalid_state", "cannot cancel an order in HELD"),
    ):
        assert i18n.key_of(f"error:{error.code}", error.message) is not None, error.message


def test_translations_read_as_vietnamese() -> None:
    line = (
        "Delivered; waiting for the payout slot since 2026-11-27 10:00 ICT"
        " (until 2026-11-27 16:00 ICT)"
    )
    assert i18n.waiting_for(line, "vi") == (
        "Đã giao hàng; chờ đến thời điểm chi trả từ 2026-11-27 10:00 ICT (đến 2026-11-27 16:00 ICT)"
    )
    stuck = "Needs an operator: payment: WalletNotLinked (10900): Account not linked"
    assert i18n.waiting_for(f"{stuck} since 2026-11-27 10:00 ICT", "vi") == (
        "Cần người vận hành xử lý: chi trả: tài khoản chưa liên kết ví PayME (mã 10900):"
        " Account not linked từ 2026-11-27 10:00 ICT"
    )
    assert (
        i18n.error_message(
            "invalid_state", "cannot confirm delivery of an order in AWAITING_PAYMENT", "vi"
        )
        == "không thể xác nhận giao hàng cho đơn đang ở trạng thái AWAITING_PAYMENT"
    )
    summary = "Escrow A1: 150,000 VND, seller 0911000001, VIETQR, payout rule t1-1600"
    assert i18n.timeline_detail("started", summary, "vi") == (
        "Ký quỹ A1: 150.000 VND, người bán 0911000001, VIETQR, quy tắc chi trả t1-1600"
    )
    rejected = "confirm_delivery: invalid_state: cannot confirm delivery of an order in CREATING"
    assert i18n.timeline_detail("signal_rejected", rejected, "vi") == (
        "confirm_delivery: invalid_state: không thể xác nhận giao hàng cho đơn đang ở trạng thái"
        " CREATING"
    )


def test_unknown_texts_and_the_shop_s_own_words_are_shown_as_given() -> None:
    assert i18n.waiting_for("Something new since 2026-11-27 10:00 ICT", "vi") == (
        "Something new từ 2026-11-27 10:00 ICT"
    )
    assert i18n.timeline_detail("delivery_confirmed", "signed by the buyer", "vi") == (
        "signed by the buyer"
    )
    assert i18n.error_message("invalid_state", "a new refusal", "vi") == "a new refusal"


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, "en"),
        ("", "en"),
        ("vi", "vi"),
        ("vi-VN,vi;q=0.9,en;q=0.8", "vi"),
        ("en-US,en;q=0.9,vi;q=0.8", "en"),
        ("fr-FR, vi;q=0.5", "vi"),
        ("fr, de", "en"),
        ("vi;q=0", "en"),
        ("*", "en"),
        ("en, vi", "en"),
        ("vi, en", "vi"),
        ("VI", "vi"),
        ("vi;q=bad", "en"),
    ],
)
def test_accept_language_negotiation(header: str | None, lang: str) -> None:
    assert i18n.negotiate(header) == lang


def test_localize_body_leaves_codes_statuses_and_data_alone() -> None:
    timeline: list[dict[str, Any]] = [
        {"kind": "ipn", "status": "HELD", "detail": "verify HOLDING", "data": {"x": 1}},
        {"kind": "status", "detail": "the buyer paid; Cotpay holds the money"},
    ]
    view: dict[str, Any] = {
        "orderRef": "A1",
        "status": "HELD",
        "waitingFor": "Money held; waiting for delivery confirmation since 2026-11-27 10:00 ICT",
        "attention": None,
        "timeline": timeline,
    }
    out = i18n.localize_body(view, "vi")
    assert out["status"] == "HELD" and out["orderRef"] == "A1"
    assert out["waitingFor"].startswith("Tiền đang được giữ; chờ xác nhận giao hàng từ ")
    assert out["timeline"][0] == timeline[0]
    assert out["timeline"][1]["detail"] == "người mua đã thanh toán; Cotpay đang giữ tiền"
    assert i18n.localize_body(view, "en") is view
    error = {"error": "order_not_found", "message": "no order 'A1'"}
    assert i18n.localize_body(error, "vi") == {
        "error": "order_not_found",
        "message": "không có đơn hàng 'A1'",
    }
    assert i18n.localize_body({"orders": []}, "vi") == {"orders": []}
