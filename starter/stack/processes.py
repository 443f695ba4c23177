"""Child processes that belong to one parent: started in their own session, stopped in order.

The building block of the stack's process parts (``parts.py``, ``devserver.py``).

Each child gets its own process group, so a terminal's Ctrl-C reaches only the parent, which then
stops the children one by one (SIGTERM, then SIGKILL after a grace period). On Linux a child is
also sent SIGTERM when its parent dies, so a killed ``run`` or test session leaves no orphans.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import structlog

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _die_with_parent() -> None:
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildProcess:
    """One supervised child: started once, waited on, stopped gracefully."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_file: Path | None = None,
        cwd: Path | None = None,
        discard_output: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.log_file = log_file
        self.cwd = cwd
        self.discard_output = discard_output
        self.process: asyncio.subprocess.Process | None = None
        self.started_at: float | None = None
        """Wall-clock time (``time.time()``) just before the process was spawned."""
        self.log_offset = 0
        """Where this run's output begins in ``log_file`` (earlier runs appended before it)."""
        self._log_handle: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def returncode(self) -> int | None:
        return self.process.returncode if self.process else None

    async def start(self) -> None:
        if self.process is not None:
            raise RuntimeError(f"{self.name} already started")
        output: int | IO[bytes] | None = asyncio.subprocess.DEVNULL if self.discard_output else None
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = self.log_file.open("ab")
            self.log_offset = self.log_file.stat().st_size
            output = self._log_handle
        self.started_at = time.time()
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.debug("child_started", child=self.name, pid=self.process.pid)

    async def wait(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} not started")
        code = await self.process.wait()
        self._close_log()
        return code

    def kill(self) -> None:
        """SIGKILL, no grace (crash tests)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
        proc = self.process
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                log.warning("child_kill_after_timeout", child=self.name, grace_s=grace)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        self._close_log()
        return proc.returncode

    def log_tail(self, lines: int = 20) -> str:
        if self.log_file is None or not self.log_file.exists():
            return ""
        text = self.log_file.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
