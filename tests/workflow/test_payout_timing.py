"""The payout is never called before 16:00 Vietnam time on T+1, and is called right after."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.workflow.fake_cotpay import FakeCotpay
from tests.workflow.helpers import Session, start
from workflows.escrow import EscrowOrderWorkflow
from workflows.models import DeliveryConfirmation, EscrowStatus

S = EscrowStatus
VN = timezone(timedelta(hours=7))


async def _skip_to(env: WorkflowEnvironment, moment: datetime) -> None:
    now = await env.get_current_time()
    assert moment > now
    await env.sleep(moment - now)


def _next_vn(now: datetime, at: time) -> datetime:
    local = now.astimezone(VN)
    candidate = datetime.combine(local.date(), at, VN)
    if candidate <= local + timedelta(minutes=1):
        candidate += timedelta(days=1)
    return candidate


async def _skip_to_vn(env: WorkflowEnvironment, at: time) -> None:
    """Move the test server's clock to the next ``at`` in Vietnam (a minute or more ahead)."""
    await _skip_to(env, _next_vn(await env.get_current_time(), at))


@pytest.mark.parametrize("hold_at", [time(23, 30), time(0, 30)])
async def test_payout_waits_for_16_00_on_t_plus_1(
    env: WorkflowEnvironment,
    hold_at: time,
    fake: FakeCotpay,
    session: Session,
) -> None:
    # Start at noon in Vietnam, whatever the server's clock says: the next 23:30 or 00:30 is
    # then 11.5 or 12.5 h ahead, always within the 24 h payment window. (Started at, say, 23:29,
    # the next 23:30 was a day later and the order EXPIRED first.)
    await _skip_to_vn(env, time(12, 0))
    order = await start(session)
    await order.until(S.AWAITING_PAYMENT)
    hold = _next_vn(await env.get_current_time(), hold_at)
    # The payment window is 24 h; hold within it.
    assert hold - await env.get_current_time() < timedelta(hours=13)
    await _skip_to(env, hold)
    held = await order.hold(time=hold)
    assert held.held_at == hold
    await order.handle.execute_update(EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation())
    view = await order.until(S.DELIVERED)
    slot = datetime.combine(hold.date() + timedelta(days=1), time(16, 0), VN)
    assert view.payout_not_before == slot

    await _skip_to(env, slot - timedelta(minutes=1))
    view = await order.view()
    assert view.status is S.DELIVERED
    assert not fake.called("payment")

    await env.sleep(timedelta(minutes=2))
    await order.until(S.PAID_OUT)
    (call,) = fake.called("payment")
    assert slot <= call.at <= slot + timedelta(minutes=2)


async def test_payout_too_early_sleeps_to_next_slot_then_pays(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    fake.fail("payment", 11100)
    order = await start(session)
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation())
    first_slot = (await order.until(S.DELIVERED)).payout_not_before
    assert first_slot is not None
    await _skip_to(env, first_slot + timedelta(seconds=1))
    await order.calls_of("payment", 1)
    view = await order.eventually(lambda v: v.payout_not_before != first_slot)
    assert view.status is S.PAYING_OUT
    assert view.payout_not_before == first_slot + timedelta(days=1)
    assert "payout_too_early" in [e.kind for e in view.timeline]
    assert len(fake.called("payment")) == 1

    await _skip_to(env, first_slot + timedelta(days=1, seconds=1))
    await order.until(S.PAID_OUT)
    calls = fake.called("payment")
    assert len(calls) == 2
    assert calls[1].at >= first_slot + timedelta(days=1)
