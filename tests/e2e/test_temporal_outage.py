"""An IPN that arrives while Temporal is down gets a 5xx; the sandbox redelivers it later."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.temporal import TemporalConfig, connect
from sandbox.testing import RunningSandbox
from starter.devserver import DevServer
from workflows.models import EscrowStatus

from .stack import Stack, stack_on

pytestmark = pytest.mark.e2e


async def _holding_record(stack: Stack, id_order: int) -> dict[str, Any]:
    records = [r for r in (await stack.sandbox_order(id_order))["ipns"] if r["status"] == "HOLDING"]
    assert len(records) == 1, records
    record: dict[str, Any] = records[0]
    return record


async def test_ipn_during_temporal_outage_gets_5xx_then_lands(
    sandbox: RunningSandbox, e2e_dir: Path
) -> None:
    db = e2e_dir / "outage" / "temporal.db"
    log_file = e2e_dir / "outage" / "temporal.log"
    server = DevServer(db, log_file=log_file)
    await server.start()
    settings = TemporalConfig(address=server.address, namespace="default")
    client = await connect(settings)
    try:
        async with stack_on(settings, client, sandbox) as stack:
            view = await stack.started("outage")
            ref, id_order = view["orderRef"], view["cotpayOrderId"]

            await server.stop()
            await stack.pay(id_order)
            deadline = time.monotonic() + 30
            while not (record := await _holding_record(stack, id_order))["lastError"]:
                assert time.monotonic() < deadline, record
                await asyncio.sleep(0.1)
            assert re.fullmatch(r"HTTP 5\d\d", record["lastError"]), record
            assert record["deliveredAt"] is None, "no 2xx while Temporal is down"

            server = DevServer(db, port=server.port, log_file=log_file)
            await server.start()
            held = await stack.wait_status(ref, EscrowStatus.HELD, within=45)
            assert held["heldAt"]
            record = await _holding_record(stack, id_order)
            assert record["deliveredAt"] and record["attempts"] >= 2
            assert len((await stack.ledger(id_order))["holds"]) == 1
    finally:
        await server.stop()
