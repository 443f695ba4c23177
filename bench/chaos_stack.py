"""The stack ``bench.chaos`` drives: ``starter.stack.local_stack``, the one assembly of
``cotpay-escrow run`` (docs/architecture.md), every part a process it may SIGKILL and restart.

This module only plans it for the harness: free loopback ports, no web UI, plain payloads, a
fresh API key and IPN secret (so forged IPNs can carry a genuine signature), the sandbox's IPN
retries capped at ``ipn_max_delay`` seconds, each part logging to ``<root>/logs/<part>.log``
(the worker counts as started once it logged ``worker.started``). Inherited ``TEMPORAL_*``,
``COTPAY_*`` and ``ESCROW_*`` are dropped. The parts are ``temporal``, ``sandbox``, ``worker``,
``gateway`` and, with ``postgres_store=True``, ``store`` first (``bench.chaos_store``: the order
store on PostgreSQL in a temporary directory of its own, so that it can have an outage);
otherwise the order store is the stack's
default SQLite file.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.chaos_store import PostgresStore
from starter.stack import Stack, StackPlan, free_port, local_stack, plan_stack, prepare

COMPONENTS = ("temporal", "sandbox", "worker", "gateway")
READY_S = 60.0
STOP_GRACE_S = 10.0
_HOST = "127.0.0.1"


@dataclass(frozen=True)
class StackUrls:
    temporal: str
    sandbox: str
    gateway: str
    api_key: str
    ipn_secret: str


class ChaosStack:
    """``start_all``/``stop_all``, and by part name ``kill`` (SIGKILL), ``start`` (again, with
    the same settings), ``alive``; ``urls``. All of it is ``starter.stack.Stack``."""

    def __init__(
        self,
        root: Path,
        *,
        sandbox_payout_rule: str = "t1-1600",
        ipn_max_delay: float = 10.0,
        postgres_store: bool = False,
    ) -> None:
        self.root = root.resolve()
        self._pg_root = Path(tempfile.mkdtemp(prefix="chaos-pg-")) if postgres_store else None
        self.store = PostgresStore(self._pg_root / "pg") if self._pg_root else None
        self.plan: StackPlan | None = None
        self.components = (("store",) if self.store else ()) + COMPONENTS
        self._api_key = secrets.token_urlsafe(16)
        self._ipn_secret = secrets.token_urlsafe(24)
        self._ipn_max_delay = ipn_max_delay
        self._payout_rule = sandbox_payout_rule
        self.stack: Stack | None = None
        self._urls: StackUrls | None = None

    @property
    def urls(self) -> StackUrls:
        if self._urls is None:
            raise RuntimeError("the stack is not planned yet (start_all)")
        return self._urls

    @property
    def database_url(self) -> str:
        """The order store the worker and the gateway use."""
        if self.plan is None:
            raise RuntimeError("the stack is not planned yet (start_all)")
        return self.plan.env["ESCROW_DATABASE_URL"]

    def _plan(self) -> Stack:
        environ = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TEMPORAL_", "COTPAY_", "ESCROW_"))
        }
        environ.update(
            {
                "ESCROW_IPN_SECRET": self._ipn_secret,
                "ESCROW_API_KEYS": self._api_key,
                "ESCROW_LOG_FORMAT": "json",
            }
        )
        plan = plan_stack(
            environ,
            data_dir=self.root,
            host=_HOST,
            payout_rule=self._payout_rule,
            temporal_port=free_port(_HOST),
            ui_port=None,
            sandbox_port=free_port(_HOST),
            gateway_port=free_port(_HOST),
            plain_payloads=True,
            log_dir=self.root / "logs",
        )
        plan.part_args["sandbox"] = [
            "--ipn-max-delay",
            str(self._ipn_max_delay),
            "--log-format",
            "json",
        ]
        plan.ready_timeout = READY_S
        prepare(plan)
        self._urls = StackUrls(
            temporal=plan.temporal_address,
            sandbox=plan.sandbox_url,
            gateway=plan.gateway_url,
            api_key=self._api_key,
            ipn_secret=self._ipn_secret,
        )
        self.plan = plan
        stack = local_stack(plan)
        if self.store is not None:

            def store_ready(url: str) -> None:
                plan.env["ESCROW_DATABASE_URL"] = url

            self.store.on_ready = store_ready
            stack = Stack([self.store, *stack.parts], stop_grace=STOP_GRACE_S)
        return stack

    async def start_all(self) -> None:
        """Start every part in order (the store first, migrated, when there is one)."""
        self.stack = self._plan()
        await self.stack.start()

    async def stop_all(self) -> None:
        try:
            if self.stack is not None:
                await self.stack.stop()
            elif self.store is not None:
                await self.store.stop()
        finally:
            if self._pg_root is not None:
                shutil.rmtree(self._pg_root, ignore_errors=True)

    def _running(self) -> Stack:
        if self.stack is None:
            raise RuntimeError("the stack is not started")
        return self.stack

    def alive(self, name: str) -> bool:
        return self._running().alive(name)

    async def kill(self, name: str) -> None:
        """SIGKILL the part (no grace; the store: an immediate shutdown) and reap it."""
        await self._running().kill(name)

    async def start(self, name: str) -> None:
        """Start the part again with the same settings (stopped first if it still runs)."""
        await self._running().restart(name)
