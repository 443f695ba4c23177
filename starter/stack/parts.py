"""The parts a ``Stack`` is made of: child processes, and parts run in this event loop.

Every part can be started, stopped (gracefully), killed (SIGKILL for a process, cancellation for
an in-process part) and started again, by name, through its ``Stack`` (``assembly.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Generic, TypeVar

from starter.stack.processes import ChildProcess

STOP_GRACE_S = 15.0
KILLED = -9

T = TypeVar("T")


class Part(ABC):
    """One component of a stack."""

    name: str

    @property
    @abstractmethod
    def alive(self) -> bool:
        """Started and not exited."""

    @property
    @abstractmethod
    def exit_code(self) -> int | None:
        """How the last run ended; None while running or before the first start."""

    @abstractmethod
    async def start(self) -> None:
        """Start (again) and return once the part answers; raise when it cannot."""

    @abstractmethod
    async def stop(self, grace: float = STOP_GRACE_S) -> int | None:
        """Stop gracefully (forcefully after ``grace`` seconds); the exit code."""

    @abstractmethod
    async def kill(self) -> int | None:
        """Stop at once, without any clean-up, as a crash would; the exit code."""


EnvSource = Mapping[str, str] | Callable[[], Mapping[str, str]]
ReadyCheck = Callable[[ChildProcess], Awaitable[None]]


class ProcessPart(Part):
    """A child process, started afresh from the same command line on every start.

    ``env`` may be a callable, read at each start (the stack's environment grows as parts
    start, e.g. with the sandbox's credentials). ``ready`` waits until the child answers.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: EnvSource | None = None,
        log_file: Path | None = None,
        ready: ReadyCheck | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self._env = env
        self.log_file = log_file
        self._ready = ready
        self.child: ChildProcess | None = None

    @property
    def alive(self) -> bool:
        return self.child is not None and self.child.returncode is None

    @property
    def exit_code(self) -> int | None:
        return self.child.returncode if self.child is not None else None

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None else None

    def log_tail(self, lines: int = 20) -> str:
        return self.child.log_tail(lines) if self.child is not None else ""

    async def start(self) -> None:
        if self.alive:
            raise RuntimeError(f"{self.name} is already running")
        env = self._env() if callable(self._env) else self._env
        self.child = ChildProcess(self.name, self.argv, env=env, log_file=self.log_file)
        await self.child.start()
        if self._ready is not None:
            try:
                await self._ready(self.child)
            except BaseException:
                await self.child.stop()
                raise

    async def stop(self, grace: float = STOP_GRACE_S) -> int | None:
        return await self.child.stop(grace) if self.child is not None else None

    async def kill(self) -> int | None:
        if self.child is None or self.child.process is None:
            return None
        self.child.kill()
        return await self.child.wait()


class InProcessPart(Part, Generic[T]):
    """A part served by an async context manager in this event loop (tests, the benchmark).

    ``factory()`` is entered on every start; ``value`` is what it yielded (a URL, a running
    sandbox, ...). ``stop`` leaves the context normally; ``kill`` cancels the task inside it.
    """

    def __init__(self, name: str, factory: Callable[[], AbstractAsyncContextManager[T]]) -> None:
        self.name = name
        self._factory = factory
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._value: list[T] = []  # what the running context yielded; empty when not running
        self._killed = False

    @property
    def value(self) -> T:
        if not self._value:
            raise RuntimeError(f"{self.name} is not running")
        return self._value[0]

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def exit_code(self) -> int | None:
        task = self._task
        if task is None or not task.done():
            return None
        if task.cancelled() or self._killed:
            return KILLED
        return 1 if task.exception() is not None else 0

    async def start(self) -> None:
        if self.alive:
            raise RuntimeError(f"{self.name} is already running")
        self._stop = asyncio.Event()
        self._killed = False
        ready: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._serve(ready), name=f"part-{self.name}")
        waiting: set[asyncio.Future[Any]] = {ready, self._task}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if ready.done() and not ready.cancelled():
            return
        await asyncio.wait({self._task})
        self._task.result()  # raises what stopped the start
        raise RuntimeError(f"{self.name} stopped while starting")

    async def _serve(self, ready: asyncio.Future[T]) -> None:
        try:
            async with self._factory() as value:
                self._value = [value]
                ready.set_result(value)
                await self._stop.wait()
        finally:
            self._value = []
            if not ready.done():
                ready.cancel()

    async def stop(self, grace: float = STOP_GRACE_S) -> int | None:
        task = self._task
        if task is None:
            return None
        self._stop.set()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(task), grace)
        if not task.done():
            return await self.kill()
        return self.exit_code

    async def kill(self) -> int | None:
        task = self._task
        if task is None:
            return None
        if not task.done():
            self._killed = True
            task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return self.exit_code
