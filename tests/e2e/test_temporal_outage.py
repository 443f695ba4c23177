"""An IPN that arrives while Temporal is down gets a 5xx; the sandbox redelivers it later."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.temporal import TemporalConfig
from sandbox.testing import RunningSandbox
from starter.stack import DevServer
from workflows.models import EscrowStatus

from .driver import E2EStack, e2e_stack

pytestmark = pytest.mark.e2e


async def _holding_record(stack: E2EStack, id_order: int) -> dict[str, Any]:
    records = [r for r in (await stack.sandbox_order(id_order))["ipns"] if r["status"] == "HOLDING"]
    assert len(records) == 1, records
    record: dict[str, Any] = records[0]
    return record


async def test_ipn_during_temporal_outage_gets_5xx_then_lands(
    sandbox: RunningSandbox, e2e_dir: Path
) -> None:
    db = e2e_dir / "outage" / "temporal.db"
    server = DevServer(db, log_file=e2e_dir / "outage" / "temporal.log")
    config = TemporalConfig(address=server.address, namespace="default")
    async with e2e_stack(config, sandbox, server=server) as stack:
        view = await stack.started("outage")
        ref, id_order = view["orderRef"], view["cotpayOrderId"]

        await stack.stop_part("temporal")
        await stack.pay(id_order)
        deadline = time.monotonic() + 30
        while not (record := await _holding_record(stack, id_order))["lastError"]:
            assert time.monotonic() < deadline, record
            await asyncio.sleep(0.1)
        assert re.fullmatch(r"HTTP 5\d\d", record["lastError"]), record
        assert record["deliveredAt"] is None, "no 2xx while Temporal is down"

        await stack.restart("temporal")
        held = await stack.wait_status(ref, EscrowStatus.HELD, within=45)
        assert held["heldAt"]
        record = await _holding_record(stack, id_order)
        assert record["deliveredAt"] and record["attempts"] >= 2
        assert len((await stack.ledger(id_order))["holds"]) == 1
