"""Run a real sandbox in the current event loop, for tests and embedding.

``async with running_sandbox(keys_dir) as sb:`` starts uvicorn in-process on a real loopback
socket (port 0 picks a free port) and yields a ``RunningSandbox`` with ``base_url``,
``cotpay_settings()`` (point a ``CotpayClient`` at it) and ``admin`` (an ``httpx.AsyncClient`` on
the base URL for the ``/sandbox/`` routes). ``serve_state`` serves a given state (the CLI) and
``serve_app`` any ASGI app (e.g. a test's IPN receiver).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from cotpay.settings import CotpaySettings
from sandbox.app import create_app
from sandbox.faults import IpnPolicy
from sandbox.keys import SandboxKeys, ensure_keys
from sandbox.state import EnvelopeMode, SandboxState
from workflows.models import PayoutRule

_START_TIMEOUT = 15.0
_LOOPBACK_FOR = {"0.0.0.0": "127.0.0.1", "::": "::1"}

FAST_IPN = IpnPolicy(
    base_delay=0.05, max_delay=0.5, max_attempts=10, timeout=2.0, reorder_window=0.3
)


@dataclass
class RunningSandbox:
    base_url: str
    state: SandboxState
    admin: httpx.AsyncClient
    keys: SandboxKeys

    def cotpay_settings(self) -> CotpaySettings:
        return self.state.cotpay_settings()

    @property
    def credentials_file(self) -> Path:
        return self.keys.credentials_file


class _QuietServer(uvicorn.Server):
    """Leaves the process's signal handlers alone (tests, embedding)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serve_app(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, what: str = "server"
) -> AsyncIterator[str]:
    """Serve an ASGI ``app`` with uvicorn in this loop, leaving the process's signal handlers
    alone; yields the base URL once it accepts."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _START_TIMEOUT
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError(f"{what} stopped during start-up")
        if loop.time() > deadline:
            server.should_exit = True
            await task
            raise RuntimeError(f"{what} did not start in time")
        await asyncio.sleep(0.01)
    sock = server.servers[0].sockets[0]
    bound_host, bound_port = sock.getsockname()[:2]
    bound_host = _LOOPBACK_FOR.get(bound_host, bound_host)
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    try:
        yield f"http://{shown}:{bound_port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def serve_state(
    state: SandboxState, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``state`` in this loop; yields its base URL (also set on the state)."""
    async with serve_app(create_app(state), host=host, port=port, what="sandbox server") as url:
        state.base_url = url
        yield url


@asynccontextmanager
async def running_sandbox(
    keys_dir: Path,
    *,
    payout_rule: PayoutRule | str = "t1-1600",
    host: str = "127.0.0.1",
    port: int = 0,
    db: Path | None = None,
    envelope: EnvelopeMode = "encrypted",
    ipn_policy: IpnPolicy | None = None,
    seed: int | None = None,
    write_credentials: bool = True,
) -> AsyncIterator[RunningSandbox]:
    keys = ensure_keys(keys_dir)
    state = SandboxState(
        keys,
        payout_rule=payout_rule,
        db=db,
        envelope_mode=envelope,
        ipn_policy=ipn_policy or FAST_IPN,
        seed=seed,
    )
    async with serve_state(state, host=host, port=port) as base_url:
        if write_credentials:
            state.write_credentials()
        async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as admin:
            yield RunningSandbox(base_url=base_url, state=state, admin=admin, keys=keys)
