"""``cotpay-escrow run`` (and other CLI commands) as child processes of a test."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import httpx

from starter.stack.processes import ChildProcess

CLI = [sys.executable, "-m", "starter.cli"]


def clean_env() -> dict[str, str]:
    """This environment without the ``TEMPORAL_``/``COTPAY_``/``ESCROW_`` settings of the test."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "COTPAY_", "ESCROW_"))
    }


async def wait_ready(run: ChildProcess, gateway: str, within: float, *, tail: int = 40) -> None:
    """Until the gateway answers and ``run`` has printed its banner (in its last ``tail`` lines)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            assert run.returncode is None, run.log_tail(40)
            try:
                healthy = (await http.get(f"{gateway}/healthz")).status_code == 200
                if healthy and "cotpay-escrow demo" in run.log_tail(tail):
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"`run` not ready within {within}s:\n{run.log_tail(40)}")


async def cli(*args: str, env: dict[str, str], within: float = 60) -> tuple[int, str]:
    """``cotpay-escrow ARGS...`` to its end: the exit code and stdout with stderr."""
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return proc.returncode, out.decode()
