"""An update's answer says what a status read says a moment later (``OrderRecord.announce``).

For every state x every accepted message: the view right after ``receive`` (the update's
answer) equals, on ``status``, ``waitingFor``, ``payoutNotBefore`` and the other times, the view
after the run loop's step for the new status has started (what ``GET`` then shows). And the
announcement changes no effect: the workflow's commands are those of the old code.
"""

from __future__ import annotations

import copy
from datetime import datetime

import pytest

from tests.unit.test_state_machine import MESSAGE_CASES, MESSAGES, STATES, at
from workflows.models import EscrowStatus, OrderView
from workflows.state_machine import OrderRecord, Reply, SearchUpdate

S = EscrowStatus
ACCEPTED = [case for case in MESSAGE_CASES if case[2].startswith("->")]
COMPARED = (
    "status",
    "waiting_for",
    "payout_not_before",
    "held_at",
    "delivered_at",
    "paid_out_at",
    "refunded_at",
    "attention",
)


def first_step(o: OrderRecord, now: datetime) -> None:
    """What the run loop does first in the current status, up to its first wait or call."""
    s = o.status
    if s is S.CREATING:
        o.creating()
    elif s is S.AWAITING_PAYMENT:
        o.payment_wait()
    elif s is S.HELD:
        o.held_wait()
    elif s is S.DELIVERED:
        o.delivered_wait()
    elif s is S.PAYING_OUT:
        o.paying_out()
        if o.payout_slot_wait(now) is None:
            o.payout_call(now)
    elif s is S.PAID_OUT:
        o.paid_out_wait()
    elif s is S.RETURN_REQUESTED:
        if o.needs_return_call:
            o.return_call(now)
        else:
            o.return_wait()
    elif s is S.NEEDS_ATTENTION:
        o.attention_wait()
    elif s in (S.EXPIRED, S.CANCELLED) and o.linger_wait() is not None:
        pass
    else:
        o.finished()


def fields(view: OrderView) -> dict[str, object]:
    return {name: getattr(view, name) for name in COMPARED}


@pytest.mark.parametrize(("state", "message", "expected"), ACCEPTED)
def test_the_answer_is_what_the_next_read_shows(state: str, message: str, expected: str) -> None:
    o = STATES[state]()
    now = at(100)
    assert o.receive(now, MESSAGES[message]) is Reply.ACCEPTED
    answer = o.view()
    first_step(o, now)
    assert fields(answer) == fields(o.view())
    assert answer.waiting_for, "an answer always says what the order waits for"


@pytest.mark.parametrize(("state", "message", "expected"), ACCEPTED)
def test_announcing_emits_nothing(
    state: str, message: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The effects of a message (search-attribute upserts, details) are those without the
    announcement, in the same order: no command of the workflow changes."""
    o = STATES[state]()
    o.effects.clear()
    silent = copy.deepcopy(o)
    now = at(100)
    o.receive(now, MESSAGES[message])
    first_step(o, now)
    with monkeypatch.context() as patched:
        patched.setattr(OrderRecord, "announce", lambda self, now: None)
        silent.receive(now, MESSAGES[message])
        first_step(silent, now)
    assert o.effects == silent.effects


def test_delivered_answers_the_payout_instant_the_upsert_sets_later() -> None:
    o = STATES["HELD"]()
    o.effects.clear()
    o.receive(at(2), MESSAGES["confirm_delivery"])
    answer = o.view()
    assert answer.status is S.DELIVERED
    assert answer.payout_not_before is not None
    assert answer.waiting_for.startswith("Delivered; waiting for the payout slot since")
    upserts = [e for e in o.effects if isinstance(e, SearchUpdate)]
    assert [u.payout_not_before for u in upserts] == [None]  # the transition's, as before
    o.delivered_wait()
    assert o.payout_not_before == answer.payout_not_before
    assert o.effects[-2] == SearchUpdate(S.DELIVERED, o.cotpay_order_id, o.payout_not_before)


def test_a_later_message_drops_the_announced_payout() -> None:
    o = STATES["HELD"]()
    o.receive(at(2), MESSAGES["confirm_delivery"])
    assert o.view().payout_not_before is not None
    o.receive(at(2), MESSAGES["open_dispute"])
    assert o.view().payout_not_before is None
    assert o.view().waiting_for.startswith("Requesting a return since")
