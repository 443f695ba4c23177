"""The stack of ``cotpay-escrow run`` (and the chaos harness): every part a child process.

In start order: the codec server (when the web UI shows encrypted payloads), the Temporal dev
server (SQLite file and log in the data dir), the Cotpay sandbox (keys in ``<data-dir>/keys``),
the worker (``python -m worker``) and the HTTP gateway. Parts already running elsewhere (an
existing Temporal, a real Cotpay) are left out (``plan.py``). Each part can be killed and
restarted by name: ``codec-server``, ``temporal``, ``sandbox``, ``worker``, ``gateway``
(docs/running.md). Each start waits until the part answers (``plan.ready_timeout``); with a log
dir, the worker counts as started once this run logged ``worker.started``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path

import httpx

from cotpay.settings import read_env_file
from runtime.codec_server import ui_codec_endpoint
from starter.stack.assembly import Stack
from starter.stack.devserver import DevServer
from starter.stack.parts import Part, ProcessPart, ReadyCheck
from starter.stack.plan import StackPlan, ensure_key_file
from starter.stack.processes import ChildProcess

STOP_TIMEOUT_S = 15.0
CLI = ("-m", "starter.cli")


async def wait_http(child: ChildProcess, url: str, within: float) -> None:
    """Until ``url`` answers below 500, or the child exits (RuntimeError), or time runs out."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if child.returncode is not None:
                raise RuntimeError(f"{child.name} exited with code {child.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code < 500:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{child.name} did not answer on {url} within {within:.0f}s")


async def wait_logged(child: ChildProcess, event: str, within: float) -> None:
    """Until this run of the child wrote ``event`` to its log file (earlier runs' lines are
    before ``child.log_offset``), or the child exits (RuntimeError), or time runs out."""
    assert child.log_file is not None
    offset = child.log_offset
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if child.returncode is not None:
            raise RuntimeError(f"{child.name} exited with code {child.returncode}")
        with contextlib.suppress(FileNotFoundError), child.log_file.open("rb") as log:
            log.seek(offset)
            if event.encode() in log.read():
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{child.name} did not log {event} within {within:.0f}s")


async def wait_fresh(child: ChildProcess, path: Path, since: float, within: float) -> None:
    """Until ``path`` was (re)written after ``since`` (the sandbox rewrites it on every start)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if child.returncode is not None:
            raise RuntimeError(f"{child.name} exited with code {child.returncode}")
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_mtime >= since:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.name} did not write {path} within {within:.0f}s")


def http_ready(plan: StackPlan, url: str) -> ReadyCheck:
    """Ready once ``url`` answers (``wait_http``), within ``plan.ready_timeout``."""

    async def ready(child: ChildProcess) -> None:
        await wait_http(child, url, plan.ready_timeout)

    return ready


def _worker_ready(plan: StackPlan) -> ReadyCheck | None:
    """With a log file: until this start logged ``worker.started`` (it polls its task queue).
    Without one (``run`` logs to the terminal) the worker has nothing to wait on."""
    if plan.log_dir is None:
        return None

    async def ready(child: ChildProcess) -> None:
        await wait_logged(child, "worker.started", plan.ready_timeout)

    return ready


def _sandbox_ready(plan: StackPlan) -> ReadyCheck:
    """Healthy, ``credentials.env`` rewritten; its ``COTPAY_*`` then go to the later parts."""

    async def ready(child: ChildProcess) -> None:
        started = child.started_at or time.time()
        await wait_http(child, f"{plan.sandbox_url}/sandbox/health", plan.ready_timeout)
        credentials = plan.keys_dir / "credentials.env"
        await wait_fresh(child, credentials, started, plan.ready_timeout)
        plan.env.update(read_env_file(credentials))
        plan.env["COTPAY_BASE_URL"] = plan.sandbox_url

    return ready


def _python(
    plan: StackPlan,
    name: str,
    *args: str,
    env: dict[str, str] | None = None,
    ready: ReadyCheck | None = None,
) -> ProcessPart:
    log_file = plan.log_dir / f"{name}.log" if plan.log_dir is not None else None
    return ProcessPart(
        name,
        [sys.executable, *args],
        env=lambda: {**plan.env, **(env or {})},
        log_file=log_file,
        ready=ready,
    )


def local_stack(plan: StackPlan) -> Stack:
    """The parts ``plan`` asks for, not started. Prepare the data dir first (``prepare``)."""
    parts: list[Part] = []
    codec_endpoint: str | None = None
    if plan.codec_server:
        assert plan.codec_token is not None
        parts.append(
            _python(
                plan,
                "codec-server",
                *CLI,
                "codec-server",
                "--host",
                plan.host,
                "--port",
                str(plan.codec_port),
                env={
                    "ESCROW_CODEC_TOKEN": plan.codec_token,
                    "ESCROW_CODEC_CORS_ORIGIN": plan.ui_origin,
                },
                ready=http_ready(plan, f"{plan.codec_url}/healthz"),
            )
        )
        codec_endpoint = ui_codec_endpoint(plan.codec_url, plan.codec_token)
    if plan.external_temporal is None:
        parts.append(
            DevServer(
                plan.data_dir / "temporal.db",
                port=plan.temporal_port,
                ui_port=plan.ui_port,
                namespace=plan.namespace,
                ip=plan.host,
                log_file=plan.data_dir / "temporal.log",
                ui_codec_endpoint=codec_endpoint,
            )
        )
    if plan.external_cotpay is None:
        parts.append(
            _python(
                plan,
                "sandbox",
                *CLI,
                "sandbox",
                "--host",
                plan.host,
                "--port",
                str(plan.sandbox_port),
                "--keys-dir",
                str(plan.keys_dir),
                "--payout-rule",
                plan.payout_rule,
                "--db",
                str(plan.data_dir / "sandbox.db"),
                *plan.part_args.get("sandbox", []),
                ready=_sandbox_ready(plan),
            )
        )
    parts.append(
        _python(
            plan,
            "worker",
            "-m",
            "worker",
            *plan.part_args.get("worker", []),
            ready=_worker_ready(plan),
        )
    )
    gateway_env = {"ESCROW_METRICS_PORT": str(plan.metrics_port)} if plan.metrics_port else {}
    parts.append(
        _python(
            plan,
            "gateway",
            *CLI,
            "gateway",
            *plan.part_args.get("gateway", []),
            env=gateway_env,
            ready=http_ready(plan, f"{plan.gateway_url}/healthz"),
        )
    )
    return Stack(parts, stop_grace=STOP_TIMEOUT_S)


def prepare(plan: StackPlan) -> None:
    """Create the data dir and, when the plan generates one, the payload key ring."""
    plan.data_dir.mkdir(parents=True, exist_ok=True)
    if plan.codec_keys_file is not None:
        ensure_key_file(plan.codec_keys_file)
