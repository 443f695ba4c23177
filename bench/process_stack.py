"""The benchmark's production-shaped stack: every part a separate process (``starter/stack``).

A Temporal dev server (SQLite file), the Cotpay sandbox (payout rule ``immediate``), one or more
escrow workers (``python -m worker``) and gateways (``cotpay-escrow gateway``), and optionally
the engine baseline's worker (``python -m bench.engine_worker``), all on 127.0.0.1 on free
ports, logging to files in the run's directory. Worker ``i`` builds its IPN URLs on gateway
``i`` (``ESCROW_PUBLIC_URL``), so with two of each the sandbox's IPNs reach both gateways.
Addresses, keys and secrets are set here; ``TEMPORAL_*``, ``COTPAY_*`` and ``ESCROW_*`` of the
caller's environment are not passed on (docs/benchmarks.md).

``cpu_seconds()`` reads each part's CPU time (user + system) with psutil, so a phase's CPU can
be split by process; ``rss_bytes(name)`` reads one part's resident memory.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from runtime.codec import CodecSettings, escrow_data_converter
from runtime.temporal import TemporalConfig, connect
from starter.stack import (
    ProcessPart,
    Stack,
    StackPlan,
    free_port,
    local_stack,
    plan_stack,
    prepare,
)
from starter.stack.local import http_ready
from starter.stack.parts import Part, ReadyCheck
from starter.stack.processes import ChildProcess
from workflows.models import TASK_QUEUE, PayoutRule

HOST = "127.0.0.1"
_OWN_PREFIXES = ("TEMPORAL_", "COTPAY_", "ESCROW_")
BENCH_PART = "bench"
WORKER_PREFIX = "ESCROW_WORKER_"
# The worker's webhook dispatcher looks for new status changes this often (production: 1 s).
WEBHOOK_POLL_S = 0.25


def _caller_env() -> dict[str, str]:
    """The caller's environment without its Temporal, Cotpay and service settings, except the
    workers' slots and cache (``ESCROW_WORKER_*``), which a run may set to compare them."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_OWN_PREFIXES) or k.startswith(WORKER_PREFIX)
    }


def worker_settings_from_caller() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(WORKER_PREFIX)}


@dataclass
class ProcessStack:
    plan: StackPlan
    stack: Stack
    gateways: list[str]
    api_key: str
    ipn_secret: str
    worker_settings: dict[str, str] = field(default_factory=dict)
    sdk_metrics: dict[str, str] = field(default_factory=dict)
    """Part name → the address of its Temporal SDK metrics (``sdk_metrics=True``)."""

    @property
    def sandbox_url(self) -> str:
        return self.plan.sandbox_url

    @property
    def keys_dir(self) -> Path:
        return self.plan.keys_dir

    @property
    def workers(self) -> list[str]:
        return [name for name in self.stack.names if name.startswith("worker")]

    async def client(self) -> Client:
        """A client of the stack's Temporal with the stack's payload keys."""
        codec = CodecSettings(keys=None, keys_file=self.plan.codec_keys_file)
        return await connect(
            TemporalConfig(address=self.plan.temporal_address, task_queue=TASK_QUEUE),
            data_converter=escrow_data_converter(codec),
        )

    async def wait_workers(self, client: Client, task_queue: str, *names: str) -> None:
        """Until the worker processes ``names`` poll ``task_queue`` for workflow tasks (a worker
        answers no health check; it is ready when it polls; its identity is ``pid@host``)."""
        pids = {str(self.pid(name)) for name in names}
        deadline = time.monotonic() + self.plan.ready_timeout * 2
        request = DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        while time.monotonic() < deadline:
            answer = await client.workflow_service.describe_task_queue(request)
            if pids <= {p.identity.split("@", 1)[0] for p in answer.pollers}:
                return
            for name, code in self.stack.died():
                raise RuntimeError(f"{name} exited with code {code}")
            await asyncio.sleep(0.25)
        raise RuntimeError(f"{', '.join(names)} did not poll {task_queue} in time")

    def pid(self, name: str) -> int | None:
        part = self.stack.part(name)
        if isinstance(part, ProcessPart):
            return part.pid
        child: ChildProcess | None = getattr(part, "child", None)
        return child.pid if child is not None else None

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU seconds of every running part, and of this process (``bench``)."""
        figures: dict[str, float] = {}
        for name in self.stack.names:
            pid = self.pid(name)
            if pid is None:
                continue
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            figures[name] = times.user + times.system
        own = psutil.Process().cpu_times()
        figures[BENCH_PART] = own.user + own.system
        return figures

    def rss_bytes(self, name: str) -> int:
        pid = self.pid(name)
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        return int(psutil.Process(pid).memory_info().rss)


def _python_part(
    plan: StackPlan, name: str, argv: list[str], extra: Mapping[str, str], ready: ReadyCheck | None
) -> ProcessPart:
    log_dir = plan.log_dir or plan.data_dir
    return ProcessPart(
        name,
        [sys.executable, *argv],
        env=lambda: {**plan.env, **extra},
        log_file=log_dir / f"{name}.log",
        ready=ready,
    )


@asynccontextmanager
async def process_stack(
    root: Path,
    *,
    workers: int = 1,
    gateways: int = 1,
    engine: bool = False,
    worker_env: Mapping[str, str] | None = None,
    sdk_metrics: bool = False,
) -> AsyncIterator[ProcessStack]:
    """Start the stack in ``root`` (``workers``/``gateways`` of each, the engine worker when
    ``engine``); ``worker_env`` goes to every worker (e.g. ``ESCROW_WORKER_*``); with
    ``sdk_metrics`` every worker and gateway serves its Temporal SDK metrics on a free port."""
    if workers < 1 or gateways < 1:
        raise ValueError("at least one worker and one gateway")
    api_key = secrets.token_hex(16)
    ipn_secret = secrets.token_hex(24)
    environ = {
        **_caller_env(),
        "ESCROW_API_KEYS": api_key,
        "ESCROW_IPN_SECRET": ipn_secret,
        "ESCROW_LOG_FORMAT": "json",
        "ESCROW_WEBHOOK_POLL_INTERVAL": str(WEBHOOK_POLL_S),
    }
    gateway_ports = [free_port(HOST) for _ in range(gateways)]
    plan = plan_stack(
        environ,
        data_dir=root,
        host=HOST,
        payout_rule=PayoutRule.IMMEDIATE.value,
        temporal_port=free_port(HOST),
        ui_port=None,
        sandbox_port=free_port(HOST),
        gateway_port=gateway_ports[0],
        log_dir=root / "logs",
    )
    prepare(plan)
    base = local_stack(plan)
    gateway_urls = [f"http://{HOST}:{port}" for port in gateway_ports]
    worker_extra = {**worker_settings_from_caller(), **(worker_env or {})}
    metrics: dict[str, str] = {}

    def observed(name: str, extra: Mapping[str, str]) -> dict[str, str]:
        if not sdk_metrics:
            return dict(extra)
        metrics[name] = f"{HOST}:{free_port(HOST)}"
        return {**extra, "ESCROW_SDK_METRICS_ADDRESS": metrics[name]}

    parts: list[Part] = []
    for part in base.parts:
        if part.name == "worker":
            parts.append(
                _python_part(
                    plan, "worker", ["-m", "worker"], observed("worker", worker_extra), ready=None
                )
            )
            for i in range(1, workers):
                parts.append(
                    _python_part(
                        plan,
                        f"worker-{i + 1}",
                        ["-m", "worker"],
                        observed(
                            f"worker-{i + 1}",
                            {**worker_extra, "ESCROW_PUBLIC_URL": gateway_urls[i % gateways]},
                        ),
                        ready=None,
                    )
                )
            if engine:
                parts.append(
                    _python_part(
                        plan,
                        "engine-worker",
                        ["-m", "bench.engine_worker"],
                        observed("engine-worker", worker_extra),
                        None,
                    )
                )
        elif part.name == "gateway":
            parts.append(
                _python_part(
                    plan,
                    "gateway",
                    ["-m", "starter.cli", "gateway"],
                    observed("gateway", {}),
                    ready=http_ready(plan, f"{gateway_urls[0]}/healthz"),
                )
            )
            for i in range(1, gateways):
                parts.append(
                    _python_part(
                        plan,
                        f"gateway-{i + 1}",
                        ["-m", "starter.cli", "gateway"],
                        observed(
                            f"gateway-{i + 1}", {"ESCROW_GATEWAY_PORT": str(gateway_ports[i])}
                        ),
                        ready=http_ready(plan, f"{gateway_urls[i]}/healthz"),
                    )
                )
        else:
            parts.append(part)
    async with Stack(parts, stop_grace=base.stop_grace) as stack:
        yield ProcessStack(
            plan=plan,
            stack=stack,
            gateways=gateway_urls,
            api_key=api_key,
            ipn_secret=ipn_secret,
            worker_settings=worker_extra,
            sdk_metrics=metrics,
        )
