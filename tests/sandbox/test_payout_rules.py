"""The three payout rules around 16:00 on T+1 (Asia/Ho_Chi_Minh), driven by the sandbox clock.

Tết 2027 per the ``holidays`` package: Feb 4 (29th of the lunar year) to Feb 10 2027 are public
holidays in Vietnam, so the first working day after Wed Feb 3 is Thu Feb 11.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cotpay.codes import PayoutTooEarly
from cotpay.models import PaymentRequest
from tests.sandbox.helpers import BUYER, IPN, SELLER, held_order, sandbox_and_client

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def vn(text: str) -> str:
    return datetime.fromisoformat(text).replace(tzinfo=VN).isoformat()


CASES = [
    # rule, held at (VN), too early (VN), allowed (VN)
    ("t1-1600", "2026-03-10T09:00", "2026-03-11T15:59:00", "2026-03-11T16:00:01"),
    ("t1-1600", "2026-01-31T10:00", "2026-02-01T15:59:00", "2026-02-01T16:00:01"),
    ("t1-1600", "2026-02-01T06:00", "2026-02-02T15:58:00", "2026-02-02T16:00:01"),
    ("t1-1600", "2026-12-31T23:30", "2027-01-01T15:59:00", "2027-01-01T16:00:01"),
    ("t1-1600", "2027-02-03T12:00", "2027-02-04T15:59:00", "2027-02-04T16:00:01"),
    ("business-t1-1600", "2026-12-31T23:30", "2027-01-02T16:30:00", "2027-01-04T16:00:01"),
    ("business-t1-1600", "2027-02-03T12:00", "2027-02-10T16:30:00", "2027-02-11T16:00:01"),
    ("business-t1-1600", "2027-02-05T08:00", "2027-02-11T15:59:00", "2027-02-11T16:00:01"),
    ("business-t1-1600", "2026-11-27T10:00", "2026-11-28T16:30:00", "2026-11-30T16:00:01"),
    ("business-t1-1600", "2026-03-31T10:00", "2026-04-01T15:59:00", "2026-04-01T16:00:01"),
]


@pytest.mark.parametrize(("rule", "held", "early", "allowed"), CASES)
async def test_payout_rule_boundary(keys_dir, rule, held, early, allowed):
    async with sandbox_and_client(keys_dir, payout_rule=rule) as (sb, client):
        await sb.admin.put("/sandbox/clock", json={"now": vn(held)})
        id_order = await held_order(sb, client)
        pay = PaymentRequest(idOrder=id_order, partnerId=SELLER, buyerId=BUYER, ipnUrl=IPN)
        await sb.admin.put("/sandbox/clock", json={"now": vn(early)})
        with pytest.raises(PayoutTooEarly):
            await client.payment(pay)
        await sb.admin.put("/sandbox/clock", json={"now": vn(allowed)})
        assert (await client.payment(pay)).code == 10100


async def test_immediate_rule_and_clock_offset(keys_dir):
    async with sandbox_and_client(keys_dir, payout_rule="immediate") as (sb, client):
        r = await sb.admin.put("/sandbox/clock", json={"offsetSeconds": -86400})
        assert r.json()["offsetSeconds"] == -86400
        id_order = await held_order(sb, client)
        pay = PaymentRequest(idOrder=id_order, partnerId=SELLER, buyerId=BUYER, ipnUrl=IPN)
        assert (await client.payment(pay)).code == 10100
        health = (await sb.admin.get("/sandbox/health")).json()
        assert health["payoutRule"] == "immediate" and health["offsetSeconds"] == -86400


async def test_offset_seconds_drives_t1(keys_dir):
    async with sandbox_and_client(keys_dir) as (sb, client):
        id_order = await held_order(sb, client)
        pay = PaymentRequest(idOrder=id_order, partnerId=SELLER, buyerId=BUYER, ipnUrl=IPN)
        with pytest.raises(PayoutTooEarly):
            await client.payment(pay)
        await sb.admin.put("/sandbox/clock", json={"offsetSeconds": 2 * 86400 + 3600})
        assert (await client.payment(pay)).code == 10100
