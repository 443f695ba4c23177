"""Run a real sandbox in the current event loop, for tests and embedding.

``async with running_sandbox(keys_dir) as sb:`` starts uvicorn in-process on a real loopback
socket (port 0 picks a free port) and yields a ``RunningSandbox`` with ``base_url``,
``cotpay_settings()`` (point a ``CotpayClient`` at it) and ``admin`` (an ``httpx.AsyncClient`` on
the base URL for the ``/sandbox/`` routes). ``serve_state`` serves a given state (the CLI) and
``serve_app`` any ASGI app (e.g. a test's IPN receiver).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from cotpay.payout_window import PayoutRule
from cotpay.serving import serving
from cotpay.settings import CotpaySettings
from sandbox.app import create_app
from sandbox.faults import IpnPolicy
from sandbox.keys import SandboxKeys, ensure_keys
from sandbox.state import EnvelopeMode, SandboxState

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


@asynccontextmanager
async def serve_app(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, what: str = "server"
) -> AsyncIterator[str]:
    """Serve an ASGI ``app`` with uvicorn in this loop; yields the base URL once it accepts."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="on", access_log=False
    )
    async with serving(config, what=what) as url:
        yield url


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
