"""Serving an ASGI app with uvicorn inside the current event loop (tests and embedding).

Shared by the sandbox, the gateway and test servers: starts ``uvicorn.Server`` as a task,
leaves the process's signal handlers alone, waits until it accepts, yields its base URL (the
bound port, so port 0 works; a wildcard address is shown as loopback) and stops it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import uvicorn

START_TIMEOUT_S = 15.0
_LOOPBACK_FOR = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class QuietServer(uvicorn.Server):
    """Leaves the process's signal handlers alone (tests, embedding)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serving(
    config: uvicorn.Config, *, what: str = "server", stop_timeout: float | None = None
) -> AsyncIterator[str]:
    """Serve ``config`` in this loop; yields the base URL once the server accepts.

    ``stop_timeout`` bounds the wait for the server to stop (None: wait as long as it takes).
    """
    server = QuietServer(config)
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError(f"{what} stopped during start-up")
        if loop.time() > deadline:
            server.should_exit = True
            await task
            raise RuntimeError(f"{what} did not start in time")
        await asyncio.sleep(0.01)
    bound_host, bound_port = server.servers[0].sockets[0].getsockname()[:2]
    bound_host = _LOOPBACK_FOR.get(bound_host, bound_host)
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    try:
        yield f"http://{shown}:{bound_port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=stop_timeout)
