"""``Stack``: the parts of the escrow service started in order, supervised, and stopped in
reverse order; any part can be killed and restarted by name while the others keep running.

``cotpay-escrow run`` builds one from a ``StackPlan`` (``local.py``: every part a child
process); the e2e tests and the benchmark build theirs from ``DevServer``, ``ProcessPart`` and
``InProcessPart`` parts (docs/running.md, docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from types import TracebackType

import structlog

from starter.stack.parts import STOP_GRACE_S, Part

log = structlog.get_logger(__name__)

SUPERVISE_POLL_S = 0.2


class Stack:
    """Named parts, started in the given order."""

    def __init__(self, parts: Sequence[Part], *, stop_grace: float = STOP_GRACE_S) -> None:
        names = [part.name for part in parts]
        if len(set(names)) != len(names):
            raise ValueError(f"part names must be unique: {names}")
        self.parts = list(parts)
        self.stop_grace = stop_grace
        self._started: list[Part] = []
        self._down: set[str] = set()

    @property
    def names(self) -> list[str]:
        return [part.name for part in self.parts]

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(f"no part {name!r} in this stack (parts: {', '.join(self.names)})")

    def alive(self, name: str) -> bool:
        """The part is running (started and not exited)."""
        return self.part(name).alive

    def __contains__(self, name: object) -> bool:
        return name in self.names

    async def start(self) -> None:
        """Start every part in order, each once the previous one answers; raise if one fails
        or has already exited when the last one answers (``stop`` cleans up either way)."""
        for part in self.parts:
            self._started.append(part)
            await part.start()
            log.debug("part_started", part=part.name)
        for name, code in self.died():
            raise RuntimeError(f"{name} exited with code {code}")

    async def stop(self) -> None:
        """Stop the started parts gracefully, last started first."""
        for part in reversed(self._started):
            code = await part.stop(self.stop_grace)
            log.info("part_stopped", part=part.name, exit_code=code)
        self._started.clear()

    async def kill(self, name: str) -> int | None:
        """SIGKILL the part (cancel an in-process one), as a crash would; its exit code."""
        part = self.part(name)
        self._down.add(name)
        code = await part.kill()
        log.info("part_killed", part=name, exit_code=code)
        return code

    async def stop_part(self, name: str) -> int | None:
        """Stop one part gracefully and leave it down until ``restart``."""
        part = self.part(name)
        self._down.add(name)
        code = await part.stop(self.stop_grace)
        log.info("part_stopped", part=name, exit_code=code)
        return code

    async def restart(self, name: str) -> None:
        """Start the part again (stopping it first if it still runs), with the same settings."""
        part = self.part(name)
        self._down.add(name)
        if part.alive:
            await part.stop(self.stop_grace)
        await part.start()
        self._down.discard(name)
        if part not in self._started:
            self._started.append(part)
        log.info("part_restarted", part=name)

    def died(self) -> list[tuple[str, int | None]]:
        """Started parts that exited although nobody stopped or killed them."""
        return [
            (part.name, part.exit_code)
            for part in self._started
            if not part.alive and part.name not in self._down
        ]

    async def supervise(self, stop: asyncio.Event) -> int:
        """Until ``stop`` is set (0) or a part exits unbidden (1, logged as ``part_exited``)."""
        while not stop.is_set():
            died = self.died()
            if died:
                for name, code in died:
                    log.error("part_exited", part=name, exit_code=code)
                return 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SUPERVISE_POLL_S)
        return 0

    async def __aenter__(self) -> Stack:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
