"""``run_worker`` with the real activities and the real sandbox, on the time-skipping server."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from cotpay.settings import CotpaySettings
from runtime.settings import EscrowSettings
from runtime.temporal import TemporalConfig
from sandbox.testing import RunningSandbox
from tests.workflow.helpers import order_input
from worker import check_timeouts, run_worker
from workflows.escrow import EscrowOrderWorkflow
from workflows.models import EscrowStatus, workflow_id_for


async def test_run_worker_serves_orders_and_stops(
    env: WorkflowEnvironment, sandbox: RunningSandbox
) -> None:
    temporal = TemporalConfig(
        address=env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        task_queue=f"tq-{uuid.uuid4().hex}",
    )
    escrow = EscrowSettings(public_url="http://127.0.0.1:9")
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(temporal, sandbox.cotpay_settings(), escrow, stop=stop))
    inp = order_input()
    handle = await env.client.start_workflow(
        EscrowOrderWorkflow.run,
        inp,
        id=workflow_id_for(inp.order_ref),
        task_queue=temporal.task_queue,
    )
    try:
        info = await asyncio.wait_for(handle.execute_update(EscrowOrderWorkflow.payment_info), 30)
        assert info.status is EscrowStatus.AWAITING_PAYMENT
        assert info.payment
        assert info.cotpay_order_id is not None
    finally:
        await handle.terminate("test finished")
        stop.set()
        await asyncio.wait_for(task, 30)


def test_worker_refuses_http_timeouts_longer_than_the_activity_timeout() -> None:
    with pytest.raises(ValueError, match="start-to-close"):
        check_timeouts(CotpaySettings(connect_timeout=30, read_timeout=40))


async def test_python_worker_py_stops_cleanly_on_sigterm(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    root = Path(__file__).resolve().parents[2]
    log = tmp_path / "worker.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "ESCROW_"))}
    environ.update(
        {
            "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "TEMPORAL_TASK_QUEUE": f"tq-{uuid.uuid4().hex}",
            "COTPAY_ENVELOPE": "plain",
            "ESCROW_LOG_FORMAT": "json",
            # The worker's webhook dispatcher opens the order store: not the repo's .data/.
            "ESCROW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'escrow.db'}",
        }
    )
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(root / "worker.py"), cwd=root, env=environ, stderr=out
        )
        try:
            for _ in range(300):
                if b"worker.started" in log.read_bytes() or proc.returncode is not None:
                    break
                await asyncio.sleep(0.05)
            assert b"worker.started" in log.read_bytes(), log.read_text()
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert b"worker.stopped" in log.read_bytes()
