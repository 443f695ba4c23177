"""The stack of ``cotpay-escrow run`` as separate processes: each part can be SIGKILLed and
restarted by name while the others run (what a chaos harness does), and orders still complete."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from starter.cli.demo import run_demo
from starter.stack import ProcessPart, StackPlan, free_port, local_stack, plan_stack, prepare

from .run_process import clean_env

pytestmark = pytest.mark.e2e

PARTS = ["temporal", "sandbox", "worker", "gateway"]


def plan(tmp_path: Path) -> StackPlan:
    return plan_stack(
        clean_env(),
        data_dir=tmp_path / "data",
        payout_rule="immediate",
        temporal_port=free_port(),
        ui_port=None,
        sandbox_port=free_port(),
        gateway_port=free_port(),
        log_dir=tmp_path / "logs",
    )


async def demo(plan: StackPlan) -> str:
    lines: list[str] = []
    code = await run_demo(
        plan.gateway_url, plan.sandbox_url, api_key="dev-api-key", step_timeout=60, out=lines.append
    )
    text = "\n".join(lines)
    assert code == 0, text
    return text


async def test_each_part_is_killed_and_restarted_and_orders_still_pay_out(
    tmp_path: Path,
) -> None:
    p = plan(tmp_path)
    prepare(p)
    async with local_stack(p) as stack:
        assert stack.names == PARTS
        assert "exactly one payout" in await demo(p)
        for name in ("worker", "gateway", "sandbox", "temporal"):
            assert await stack.kill(name) == -9, name
            assert not stack.part(name).alive
            assert stack.died() == [], "a killed part is not a death"
            await stack.restart(name)
            assert stack.part(name).alive, name
        assert "exactly one payout" in await demo(p)
        worker = stack.part("worker")
        assert isinstance(worker, ProcessPart)
        assert (tmp_path / "logs" / "worker.log").read_text().count("worker.started") == 2


async def test_supervise_reports_a_part_that_dies_unbidden(tmp_path: Path) -> None:
    p = plan(tmp_path)
    prepare(p)
    async with local_stack(p) as stack:
        stop = asyncio.Event()
        await stack.kill("worker")
        stop.set()
        assert await stack.supervise(stop) == 0, "a deliberate kill is not reported"
        await stack.restart("worker")
        worker = stack.part("worker")
        assert isinstance(worker, ProcessPart) and worker.child is not None
        worker.child.kill()
        assert await asyncio.wait_for(stack.supervise(asyncio.Event()), 30) == 1
        assert stack.died() == [("worker", -9)]
