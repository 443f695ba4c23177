from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cotpay.client import CotpayClient
from sandbox.testing import RunningSandbox, running_sandbox


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox-keys")


@pytest.fixture
async def sandbox(keys_dir: Path) -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(keys_dir, payout_rule="immediate") as sb:
        yield sb


@pytest.fixture
async def client(sandbox: RunningSandbox) -> AsyncIterator[CotpayClient]:
    async with CotpayClient(sandbox.cotpay_settings()) as c:
        yield c
