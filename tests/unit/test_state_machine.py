# ruff: noqa: E501  (the two tables are read as tables)
"""The escrow state machine, pure: every state x every message, and what each step outcome does.

States are reached through the machine's own transitions (as the run loop drives them), so the
facts behind each state are the real ones. Table cells:

* messages: ``->STATUS`` accepted (the status right after), ``=`` no-op (already done),
  ``!code`` refused with that failure type (an update fails; a signal records
  ``signal_rejected`` and changes nothing);
* IPNs: what the step waiting in that state does once the IPN is recorded: ``wait`` nothing (it
  keeps waiting), ``STATUS`` the status it moves to, ``+end`` the workflow finishes, ``ignored``
  the IPN is recorded as ``ipn_ignored`` (no Cotpay order known yet).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest

from activities.models import CallResult, CreateOrderResult
from cotpay.ipn import IpnBody, IpnStatus, IpnStep
from cotpay.payout_window import earliest_payout
from workflows.calls import Failure
from workflows.models import (
    CancelRequest,
    DeliveryConfirmation,
    DisputeRequest,
    EscrowStatus,
    IpnSignal,
    OperatorAction,
    OperatorActionKind,
    OrderInput,
)
from workflows.rules import Refused
from workflows.state_machine import (
    MAX_TOO_EARLY,
    AttentionRaised,
    Details,
    OrderRecord,
    Reply,
    SearchUpdate,
    ShopMessage,
    Wait,
)

S = EscrowStatus
T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam
ID_ORDER = 7
ORDER = OrderInput(order_ref="r-1", seller_id="S0000001", buyer_id="0912345678", amount=150_000)
_tx = itertools.count()


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def ipn(
    status: str, *, now: datetime, id_order: int | None = ID_ORDER, amount: int | None = None
) -> IpnSignal:
    step = {
        "HOLDING": IpnStep.VERIFY,
        "PAYMENT_FAILED": IpnStep.VERIFY,
        "PAID_OUT": IpnStep.PAYMENT,
        "PAYOUT_FAILED": IpnStep.PAYMENT,
        "REFUNDED": IpnStep.RETURN,
        "RETURN_REJECTED": IpnStep.RETURN,
    }[status]
    body = IpnBody(
        idOrder=id_order,
        status=status,
        code=10100,
        amount=ORDER.amount if amount is None else amount,
        transactionId=f"tx-{next(_tx)}",
        time=now,
    )
    return IpnSignal(step=step, body=body)


# --- reaching each state through the machine's transitions ---------------------------------


def creating(**inp: object) -> OrderRecord:
    o = OrderRecord(inp=ORDER.model_copy(update=inp), status=S.CREATING, status_since=T0)
    o.started(T0)
    o.creating()
    return o


def awaiting_payment() -> OrderRecord:
    o = creating()
    o.order_created(T0, CreateOrderResult(id_order=ID_ORDER))
    o.order_verified(T0, CallResult(code=10100, data="https://pay.example/qr"))
    o.creation_done(T0)
    return o


def held(**inp: object) -> OrderRecord:
    o = awaiting_payment() if not inp else _created(creating(**inp))
    o.payment_wait()
    o.record_ipn(ipn("HOLDING", now=at(1)), at(1))
    o.payment_wait_over(at(1))
    assert o.status is S.HELD
    return o


def _created(o: OrderRecord) -> OrderRecord:
    o.order_created(T0, CreateOrderResult(id_order=ID_ORDER))
    o.order_verified(T0, CallResult(code=10100, data="qr"))
    o.creation_done(T0)
    return o


def delivered() -> OrderRecord:
    o = held()
    assert o.receive(at(2), DeliveryConfirmation()) is Reply.ACCEPTED
    return o


def paying_out() -> OrderRecord:
    """PAYING_OUT once the payout slot is reached, before the payment call starts."""
    o = delivered()
    wait = o.delivered_wait()
    assert wait.until is not None
    o.delivered_wait_over(wait.until)
    o.paying_out()
    assert o.payout_slot_wait(wait.until) is None
    return o


def calling_payment() -> OrderRecord:
    o = paying_out()
    o.payout_call(at(40))
    return o


def paid_out() -> OrderRecord:
    o = calling_payment()
    o.payout_succeeded(at(40))
    return o


def return_requested(o: OrderRecord | None = None) -> OrderRecord:
    o = o or held()
    assert o.receive(at(3), DisputeRequest()) is Reply.ACCEPTED
    o.return_call(at(3))
    o.return_requested(at(3))
    return o


def refunded() -> OrderRecord:
    o = return_requested()
    o.return_wait()
    o.record_ipn(ipn("REFUNDED", now=at(4)), at(4))
    o.return_wait_over(at(4))
    return o


def expired() -> OrderRecord:
    o = awaiting_payment()
    wait = o.payment_wait()
    assert wait.until is not None and not wait.done()
    o.payment_wait_over(wait.until)
    return o


def cancelled() -> OrderRecord:
    o = awaiting_payment()
    assert o.receive(at(1), CancelRequest()) is Reply.ACCEPTED
    return o


def failed() -> OrderRecord:
    o = creating()
    o.creation_failed(T0, Failure("customer_id", "SellerNotFound", 10200, "unknown seller"))
    return o


def attention_payment(kind: str = "WalletNotLinked", code: int | None = 10900) -> OrderRecord:
    o = calling_payment()
    o.call_failed(at(40), Failure("payment", kind, code, "m"))
    assert o.payout_failed(at(40), Failure("payment", kind, code, "m")) is False
    return o


def attention_delivery() -> OrderRecord:
    o = held()
    wait = o.held_wait()
    assert wait.until is not None
    o.held_wait_over(wait.until)
    return o


def attention_create() -> OrderRecord:
    o = creating()
    o.create_failed(T0, Failure("create", "Timeout", None, "no answer"))
    return o


def attention_return(outcome: str | None) -> OrderRecord:
    o = return_requested()
    wait = o.return_wait()
    if outcome is not None:
        o.record_ipn(ipn(outcome, now=at(5)), at(5))
    o.return_wait_over(at(5) if outcome else wait.until or at(5))
    return o


def attention_ipn_check() -> OrderRecord:
    """A HOLDING IPN for the wrong amount reached the payment wait."""
    o = awaiting_payment()
    wait = o.payment_wait()
    o.record_ipn(ipn("HOLDING", now=at(1), amount=WRONG_AMOUNT), at(1))
    assert wait.done()
    o.payment_wait_over(at(1))
    return o


WRONG_AMOUNT = 15_000
STATES: dict[str, Callable[[], OrderRecord]] = {
    "CREATING": creating,
    "AWAITING_PAYMENT": awaiting_payment,
    "HELD": held,
    "DELIVERED": delivered,
    "PAYING_OUT before the call": paying_out,
    "PAYING_OUT calling": calling_payment,
    "PAID_OUT": paid_out,
    "RETURN_REQUESTED": return_requested,
    "REFUNDED": refunded,
    "EXPIRED": expired,
    "CANCELLED": cancelled,
    "FAILED": failed,
    "NEEDS_ATTENTION payment refused": attention_payment,
    "NEEDS_ATTENTION payout in doubt": lambda: attention_payment("Timeout", None),
    "NEEDS_ATTENTION delivery deadline": attention_delivery,
    "NEEDS_ATTENTION create unanswered": attention_create,
    "NEEDS_ATTENTION return rejected": lambda: attention_return("RETURN_REJECTED"),
    "NEEDS_ATTENTION return window": lambda: attention_return(None),
    "NEEDS_ATTENTION IPN check": attention_ipn_check,
}

# --- every state x every shop and operator message -------------------------------------------

MESSAGES: dict[str, ShopMessage] = {
    "confirm_delivery": DeliveryConfirmation(),
    "open_dispute": DisputeRequest(),
    "cancel": CancelRequest(),
    **{f"operator {a}": OperatorAction(action=a) for a in get_args(OperatorActionKind)},
}
INV = "!invalid_state"
MESSAGE_TABLE: dict[str, tuple[str, ...]] = {
    # state:                          delivery   dispute              cancel        retry                 release          refund                cancel (operator)
    "CREATING":                       (INV,         "!not_held",          "->CREATING",  INV,                  INV,             INV,                  INV),
    "AWAITING_PAYMENT":               (INV,         "!not_held",          "->CANCELLED", INV,                  INV,             INV,                  INV),
    "HELD":                           ("->DELIVERED", "->RETURN_REQUESTED", INV,          INV,                  INV,             INV,                  INV),
    "DELIVERED":                      ("=",         "->RETURN_REQUESTED",  INV,          INV,                  INV,             INV,                  INV),
    "PAYING_OUT before the call":     ("=",         "->RETURN_REQUESTED",  INV,          INV,                  "=",             INV,                  INV),
    "PAYING_OUT calling":             ("=",         INV,                  INV,          INV,                  "=",             INV,                  INV),
    "PAID_OUT":                       ("=",         INV,                  INV,          INV,                  "=",             INV,                  INV),
    "RETURN_REQUESTED":               (INV,         "=",                  INV,          INV,                  INV,             "=",                  INV),
    "REFUNDED":                       (INV,         "=",                  INV,          INV,                  INV,             "=",                  INV),
    "EXPIRED":                        (INV,         INV,                  INV,          INV,                  INV,             INV,                  INV),
    "CANCELLED":                      (INV,         INV,                  "=",          INV,                  INV,             INV,                  "="),
    "FAILED":                         (INV,         INV,                  INV,          INV,                  INV,             INV,                  INV),
    "NEEDS_ATTENTION payment refused":   ("=",      INV,                  INV,          "->PAYING_OUT",        "->PAYING_OUT",   "->RETURN_REQUESTED",  "!money_held"),
    "NEEDS_ATTENTION payout in doubt":   ("=",      INV,                  INV,          "->PAYING_OUT",        "->PAYING_OUT",   "!payout_in_doubt",   "!money_held"),
    "NEEDS_ATTENTION delivery deadline": ("->DELIVERED", "->RETURN_REQUESTED", INV,       "->HELD",              "->PAYING_OUT",   "->RETURN_REQUESTED",  "!money_held"),
    "NEEDS_ATTENTION create unanswered": (INV,      INV,                  INV,          "->CREATING",          "!not_held",     "!not_held",          "->CANCELLED"),
    "NEEDS_ATTENTION return rejected":   (INV,      INV,                  INV,          "->RETURN_REQUESTED",  "->PAYING_OUT",   "->RETURN_REQUESTED",  "!money_held"),
    "NEEDS_ATTENTION return window":     (INV,      INV,                  INV,          "->RETURN_REQUESTED",  "!return_pending", "->RETURN_REQUESTED", "!money_held"),
    "NEEDS_ATTENTION IPN check":         (INV,      INV,                  INV,          "->AWAITING_PAYMENT",  "!not_held",     "!not_held",          "->CANCELLED"),
}  # fmt: skip

MESSAGE_CASES = [
    (state, name, expected)
    for state, row in MESSAGE_TABLE.items()
    for name, expected in zip(MESSAGES, row, strict=True)
]


def test_the_tables_cover_every_state_message_and_ipn_status() -> None:
    built = {name: make() for name, make in STATES.items()}
    assert {o.status for o in built.values()} == set(EscrowStatus)
    for name, o in built.items():
        assert name.split()[0] == o.status.value, name
    assert set(MESSAGE_TABLE) == set(STATES) == set(IPN_TABLE)
    assert {m.action for m in MESSAGES.values() if isinstance(m, OperatorAction)} == set(
        get_args(OperatorActionKind)
    )
    assert set(IPN_STATUSES) == {s.value for s in IpnStatus}


@pytest.mark.parametrize(("state", "message", "expected"), MESSAGE_CASES)
def test_update(state: str, message: str, expected: str) -> None:
    o = STATES[state]()
    before = (o.status, len(o.timeline))
    msg = MESSAGES[message]
    now = at(100)
    if expected.startswith("!"):
        with pytest.raises(Refused) as caught:
            o.check(msg)
        assert caught.value.type == caught.value.code == expected[1:]
        with pytest.raises(Refused):
            o.receive(now, msg)
        assert (o.status, len(o.timeline)) == before
    elif expected == "=":
        assert o.check(msg) is True
        assert o.receive(now, msg) is Reply.NO_OP
        assert (o.status, len(o.timeline)) == before
    else:
        assert o.check(msg) is False
        assert o.receive(now, msg) is Reply.ACCEPTED
        assert o.status.value == expected[2:]
        if o.status is not before[0]:
            assert o.status_since == now
            assert o.timeline[-1].kind == "status"


@pytest.mark.parametrize(("state", "message", "expected"), MESSAGE_CASES)
def test_signal(state: str, message: str, expected: str) -> None:
    o = STATES[state]()
    status = o.status
    reply = o.receive_signal(at(100), MESSAGES[message])
    if expected.startswith("!"):
        assert reply is Reply.REFUSED
        assert o.status is status
        event = o.timeline[-1]
        assert event.kind == "signal_rejected"
        name = message.split()[0].replace("operator", "operator_action")
        assert event.detail.startswith(f"{name}: {expected[1:]}: ")
    elif expected == "=":
        assert reply is Reply.NO_OP
        assert o.status is status
    else:
        assert reply is Reply.ACCEPTED
        assert o.status.value == expected[2:]


def test_cancel_while_creating_ends_the_creation_cancelled() -> None:
    o = creating()
    assert o.receive(at(0.1), CancelRequest(reason="out of stock")) is Reply.ACCEPTED
    assert o.cancel_requested and o.status is S.CREATING
    o.order_created(at(0.2), CreateOrderResult(id_order=ID_ORDER))
    assert not o.needs_verify
    o.creation_done(at(0.2))
    assert o.view().status is S.CANCELLED and o.creation_settled
    assert o.payment is None


# --- every state x every IPN status ----------------------------------------------------------

IPN_STATUSES = (
    "HOLDING",
    "PAYMENT_FAILED",
    "PAID_OUT",
    "PAYOUT_FAILED",
    "REFUNDED",
    "RETURN_REJECTED",
)
IGN = ("ignored",) * 6
# ``early``: recorded as ``ipn_early`` (a PAID_OUT / REFUNDED before any call of its kind, patch
# ``early-outcome-ipn``), and the step keeps waiting.
NOTHING = ("wait", "wait", "early", "wait", "early", "wait")
IPN_TABLE: dict[str, tuple[str, ...]] = {
    # state:                              HOLDING             PAYMENT_FAILED  PAID_OUT        PAYOUT_FAILED      REFUNDED        RETURN_REJECTED
    "CREATING":                           IGN,
    "AWAITING_PAYMENT":                   ("HELD",             "wait",         "early",        "wait",            "early",        "wait"),
    "HELD":                               NOTHING,
    "DELIVERED":                          NOTHING,
    "PAYING_OUT before the call":         NOTHING,
    "PAYING_OUT calling":                 ("wait",             "wait",         "wait",         "wait",            "early",        "wait"),
    "PAID_OUT":                           ("wait",             "wait",         "PAID_OUT+end", "NEEDS_ATTENTION", "early",        "wait"),
    "RETURN_REQUESTED":                   ("wait",             "wait",         "early",        "wait",            "REFUNDED",     "NEEDS_ATTENTION"),
    "REFUNDED":                           ("wait",             "wait",         "early",        "wait",            "wait",         "wait"),
    "EXPIRED":                            ("RETURN_REQUESTED", "wait",         "early",        "wait",            "early",        "wait"),
    "CANCELLED":                          ("RETURN_REQUESTED", "wait",         "early",        "wait",            "early",        "wait"),
    "FAILED":                             IGN,
    "NEEDS_ATTENTION payment refused":    ("wait",             "wait",         "PAID_OUT+end", "wait",            "early",        "wait"),
    "NEEDS_ATTENTION payout in doubt":    ("wait",             "wait",         "PAID_OUT+end", "wait",            "early",        "wait"),
    "NEEDS_ATTENTION delivery deadline":  NOTHING,
    "NEEDS_ATTENTION create unanswered":  IGN,
    "NEEDS_ATTENTION return rejected":    ("wait",             "wait",         "early",        "wait",            "REFUNDED+end", "wait"),
    "NEEDS_ATTENTION return window":      ("wait",             "wait",         "early",        "wait",            "REFUNDED+end", "wait"),
    "NEEDS_ATTENTION IPN check":          NOTHING,
}  # fmt: skip


def _step_of(o: OrderRecord) -> tuple[Wait | None, Callable[[datetime], bool | None]]:
    """The wait of the run loop's step in the current status, and what it does after."""
    s = o.status
    if s is S.AWAITING_PAYMENT:
        return o.payment_wait(), o.payment_wait_over
    if s is S.HELD:
        return o.held_wait(), o.held_wait_over
    if s is S.DELIVERED:
        return o.delivered_wait(), o.delivered_wait_over
    if s is S.PAID_OUT:
        return o.paid_out_wait(), o.paid_out_wait_over
    if s is S.RETURN_REQUESTED:
        return o.return_wait(), o.return_wait_over
    if s is S.NEEDS_ATTENTION:
        return o.attention_wait(), o.attention_wait_over
    if s in (S.EXPIRED, S.CANCELLED):
        return o.linger_wait(), o.linger_over
    return None, lambda now: None  # creating or calling Cotpay, or final: nothing waits


@pytest.mark.parametrize(
    ("state", "ipn_status", "expected"),
    [
        (state, status, expected)
        for state, row in IPN_TABLE.items()
        for status, expected in zip(IPN_STATUSES, row, strict=True)
    ],
)
def test_ipn(state: str, ipn_status: str, expected: str) -> None:
    o = STATES[state]()
    before = o.status
    wait, after = _step_of(o)
    now = at(100)
    assert o.record_ipn(ipn(ipn_status, now=now), now) is True
    kinds = {"ignored": "ipn_ignored", "early": "ipn_early"}
    assert o.timeline[-1].kind == kinds.get(expected, "ipn")
    if wait is None or not wait.done():
        assert expected in ("wait", "ignored", "early")
        assert o.status is before
        return
    finished = after(now)
    assert f"{o.status.value}{'+end' if finished else ''}" == expected


def test_an_ipn_for_another_cotpay_order_or_a_duplicate_changes_nothing() -> None:
    """Without the IPN checks (orders replaying a history from before the ``ipn-amount-check``
    patch), a HOLDING for another Cotpay order is ignored."""
    o = awaiting_payment()
    o.ipn_checks = lambda: False
    o.record_ipn(ipn("HOLDING", now=at(1), id_order=999), at(1))
    assert o.timeline[-1].kind == "ipn_ignored" and o.holding_at is None
    sig = ipn("HOLDING", now=at(1))
    assert o.record_ipn(sig, at(1)) is True
    events = len(o.timeline)
    assert o.record_ipn(sig, at(2)) is False
    assert len(o.timeline) == events


# --- what each step outcome does ---------------------------------------------------------------


def test_transitions_emit_search_updates_with_the_values_of_that_moment() -> None:
    o = attention_payment()
    o.effects.clear()
    assert o.receive(at(50), OperatorAction(action="release")) is Reply.ACCEPTED
    updates = [e for e in o.effects if isinstance(e, SearchUpdate)]
    assert o.held_at is not None
    slot = earliest_payout(o.held_at, rule=ORDER.payout_rule)
    assert updates == [
        SearchUpdate(S.NEEDS_ATTENTION, ID_ORDER, slot),
        SearchUpdate(S.PAYING_OUT, ID_ORDER, slot),
    ]


def test_needing_an_operator_logs_and_records_the_evidence() -> None:
    o = calling_payment()
    o.effects.clear()
    o.payout_failed(at(40), Failure("payment", "WalletNotLinked", 10900, "m", {"x": 1}))
    assert o.status is S.NEEDS_ATTENTION
    assert o.attention is not None and (o.attention.step, o.attention.code) == ("payment", 10900)
    assert [e.kind for e in o.timeline[-2:]] == ["evidence", "status"]
    assert AttentionRaised(o.attention.reason, "payment") in o.effects
    assert not o.facts().payout_in_doubt


def test_no_answer_to_a_payout_leaves_it_in_doubt() -> None:
    o = attention_payment("Timeout", None)
    assert o.facts().payout_in_doubt
    o.record_ipn(ipn("PAYOUT_FAILED", now=at(41)), at(41))
    assert not o.facts().payout_in_doubt


def test_payout_too_early_waits_for_the_next_slot_then_gives_up() -> None:
    o = calling_payment()
    too_early = Failure("payment", "PayoutTooEarly", 11100, "too early")
    now = at(40)
    for _ in range(MAX_TOO_EARLY - 1):
        assert o.payout_failed(now, too_early) is True
        assert o.status is S.PAYING_OUT
        assert o.payout_not_before is not None and o.payout_not_before >= now + timedelta(minutes=5)
        assert o.timeline[-1].kind == "payout_too_early"
        wait = o.payout_slot_wait(now)
        assert wait is not None and wait.until == o.payout_not_before
        now = o.payout_not_before
        assert o.payout_slot_wait(now) is None
        o.payout_call(now)
    assert o.payout_failed(now, too_early) is False
    assert o.status is S.NEEDS_ATTENTION
    assert o.attention is not None and o.attention.code == 11100


def test_the_delivery_deadline_releases_automatically_when_asked() -> None:
    o = held(auto_release=True)
    wait = o.held_wait()
    assert wait.until is not None
    o.held_wait_over(wait.until)
    assert o.status is S.PAYING_OUT
    assert o.held_at is not None
    assert o.payout_not_before == earliest_payout(o.held_at, rule=ORDER.payout_rule)


def test_an_operator_retry_after_the_delivery_deadline_gives_a_fresh_deadline() -> None:
    o = attention_delivery()
    o.receive(at(500), OperatorAction(action="retry"))
    wait = o.held_wait()
    assert wait.until == at(500) + ORDER.timers.delivery_deadline
    assert o.deadline_override is None


def test_an_unanswered_create_is_said_on_the_retry() -> None:
    o = attention_create()
    assert o.create_unanswered and o.needs_cotpay_order
    o.receive(at(1), OperatorAction(action="retry"))
    assert o.status is S.CREATING and not o.creation_settled
    assert o.create_order_input().earlier_call_unanswered


def test_a_failure_ipn_of_an_earlier_call_is_stale() -> None:
    o = paid_out()
    o.record_ipn(ipn("PAYOUT_FAILED", now=at(40) - timedelta(hours=1)), at(41))
    assert o.timeline[-1].kind == "ipn_stale" and o.payout_outcome is None


def test_the_waiting_line_is_the_current_details() -> None:
    o = awaiting_payment()
    o.effects.clear()
    o.payment_wait()
    assert o.effects == [Details(o.waiting_for)]
    assert o.waiting_for.startswith("Waiting for buyer payment since 2026-11-25 10:00 ICT")
    o.finished()
    assert o.waiting_for == "Finished: AWAITING_PAYMENT"


# --- IPN checks: a HOLDING or REFUNDED IPN whose amount or idOrder differs -----------------------

WRONG: dict[str, dict[str, int]] = {
    "amount": {"amount": WRONG_AMOUNT},
    "idOrder": {"id_order": 999},
    "both": {"amount": WRONG_AMOUNT, "id_order": 999},
}
# What the step waiting in each state does after a wrong HOLDING / a wrong REFUNDED:
# ``wait`` it keeps waiting (the IPN is recorded as ``ipn_mismatch``), ``ignored`` recorded as
# ``ipn_ignored`` (no Cotpay order known yet), ``NEEDS_ATTENTION`` it stops at an operator.
CHECK_TABLE: dict[str, tuple[str, str]] = {
    # state:                              wrong HOLDING        wrong REFUNDED
    "CREATING":                           ("ignored",          "ignored"),
    "AWAITING_PAYMENT":                   ("NEEDS_ATTENTION",  "wait"),
    "HELD":                               ("wait",             "wait"),
    "DELIVERED":                          ("wait",             "wait"),
    "PAYING_OUT before the call":         ("wait",             "wait"),
    "PAYING_OUT calling":                 ("wait",             "wait"),
    "PAID_OUT":                           ("wait",             "wait"),
    "RETURN_REQUESTED":                   ("wait",             "NEEDS_ATTENTION"),
    "REFUNDED":                           ("wait",             "wait"),
    "EXPIRED":                            ("NEEDS_ATTENTION",  "wait"),
    "CANCELLED":                          ("NEEDS_ATTENTION",  "wait"),
    "FAILED":                             ("ignored",          "ignored"),
    "NEEDS_ATTENTION payment refused":    ("wait",             "wait"),
    "NEEDS_ATTENTION payout in doubt":    ("wait",             "wait"),
    "NEEDS_ATTENTION delivery deadline":  ("wait",             "wait"),
    "NEEDS_ATTENTION create unanswered":  ("ignored",          "ignored"),
    "NEEDS_ATTENTION return rejected":    ("wait",             "wait"),
    "NEEDS_ATTENTION return window":      ("wait",             "wait"),
    "NEEDS_ATTENTION IPN check":          ("wait",             "wait"),
}  # fmt: skip


def test_the_check_table_covers_every_state() -> None:
    assert set(CHECK_TABLE) == set(STATES)


@pytest.mark.parametrize(
    ("state", "ipn_status", "wrong", "expected"),
    [
        (state, status, wrong, expected)
        for state, row in CHECK_TABLE.items()
        for status, expected in zip(("HOLDING", "REFUNDED"), row, strict=True)
        for wrong in WRONG
    ],
)
def test_a_wrong_ipn_never_moves_money(
    state: str, ipn_status: str, wrong: str, expected: str
) -> None:
    o = STATES[state]()
    before = (o.status, o.holding_at, o.return_outcome, o.refunded_at, o.paid_out_at)
    wait, after = _step_of(o)
    now = at(100)
    assert o.record_ipn(ipn(ipn_status, now=now, **WRONG[wrong]), now) is True
    recorded = o.timeline[-1]
    if expected == "ignored":
        assert recorded.kind == "ipn_ignored"
        assert o.status is before[0]
        return
    assert recorded.kind == "ipn_mismatch"
    assert recorded.data is not None
    assert recorded.data["check"] == (["amount", "idOrder"] if wrong == "both" else [wrong])
    # Nothing the IPN would have moved has moved: no hold, no refund outcome.
    assert (o.holding_at, o.return_outcome, o.refunded_at, o.paid_out_at) == before[1:]
    if wait is None or not wait.done():
        assert expected == "wait"
        assert o.status is before[0]
        return
    assert after(now) in (None, False)
    assert o.status.value == expected
    assert o.status not in (S.HELD, S.REFUNDED)
    assert o.attention is not None and o.attention.step == "ipn_check"
    assert "not trusted" in o.attention.reason
    evidence = [e for e in o.timeline if e.kind == "evidence"][-1]
    assert evidence.data is not None
    expected_values = {"expectedAmount": ORDER.amount, "expectedIdOrder": ID_ORDER}
    assert expected_values.items() <= evidence.data.items()
    assert evidence.data["receivedAmount"] == WRONG[wrong].get("amount", ORDER.amount)
    assert evidence.data["receivedIdOrder"] == WRONG[wrong].get("id_order", ID_ORDER)
    assert evidence.data["ipnStatus"] == ipn_status


def test_an_ipn_without_an_amount_or_idorder_is_not_compared() -> None:
    o = awaiting_payment()
    wait = o.payment_wait()
    sig = ipn("HOLDING", now=at(1), id_order=None)
    sig.body.amount = None
    o.record_ipn(sig, at(1))
    assert o.timeline[-1].kind == "ipn" and wait.done()
    o.payment_wait_over(at(1))
    assert o.status is S.HELD


def test_without_the_checks_a_wrong_amount_holds_as_before() -> None:
    """Orders replaying a history from before the ``ipn-amount-check`` patch."""
    o = awaiting_payment()
    o.ipn_checks = lambda: False
    o.payment_wait()
    o.record_ipn(ipn("HOLDING", now=at(1), amount=WRONG_AMOUNT), at(1))
    o.payment_wait_over(at(1))
    assert o.status is S.HELD


def test_the_checks_are_asked_only_for_an_ipn_that_disagrees() -> None:
    asked: list[bool] = []

    def checks() -> bool:
        asked.append(True)
        return True

    o = awaiting_payment()
    o.ipn_checks = checks
    o.record_ipn(ipn("HOLDING", now=at(1)), at(1))
    o.record_ipn(ipn("PAID_OUT", now=at(1), amount=WRONG_AMOUNT), at(1))
    assert asked == []
    o.record_ipn(ipn("HOLDING", now=at(2), amount=WRONG_AMOUNT), at(2))
    assert asked == [True]


def test_a_right_hold_beats_a_wrong_one_that_came_first() -> None:
    o = awaiting_payment()
    wait = o.payment_wait()
    o.record_ipn(ipn("HOLDING", now=at(1), amount=WRONG_AMOUNT), at(1))
    o.record_ipn(ipn("HOLDING", now=at(1)), at(1))
    assert wait.done()
    o.payment_wait_over(at(1))
    assert o.status is S.HELD
    assert [e.kind for e in o.timeline if e.kind.startswith("ipn")] == ["ipn_mismatch", "ipn"]


def test_after_a_wrong_hold_the_operator_retry_waits_for_the_right_one() -> None:
    o = attention_ipn_check()
    assert o.receive(at(2), OperatorAction(action="retry")) is Reply.ACCEPTED
    assert o.status is S.AWAITING_PAYMENT
    wait = o.payment_wait()
    assert not wait.done()
    assert wait.until == at(2) + ORDER.timers.payment_window
    o.record_ipn(ipn("HOLDING", now=at(3)), at(3))
    o.payment_wait_over(at(3))
    assert o.view().status is S.HELD


def test_a_wrong_refund_before_the_return_call_is_not_its_answer() -> None:
    o = held()
    o.record_ipn(ipn("REFUNDED", now=at(2), amount=WRONG_AMOUNT), at(2))
    assert o.refund_problem is not None
    o = return_requested(o)
    assert o.refund_problem is None
    assert not o.return_wait().done()


def test_a_repeated_delivery_after_an_operator_stop_is_refused_before_its_patch() -> None:
    """Orders from before patch ``repeated-delivery`` keep refusing it (update) and recording
    ``signal_rejected`` (signal), so their histories replay."""
    o = attention_payment()
    o.repeat_guard = lambda: False
    with pytest.raises(Refused) as caught:
        o.check(MESSAGES["confirm_delivery"])
    assert caught.value.code == "invalid_state"
    assert o.receive_signal(at(100), MESSAGES["confirm_delivery"]) is Reply.REFUSED
    assert o.timeline[-1].kind == "signal_rejected"
