"""One time-skipping Temporal test server per session, with the escrow search attributes.

The environment uses the production data converter configured from the environment, as the
workers under test (``run_worker``, ``python worker.py``) do. The suite runs it without keys; to
run every workflow test through the encryption codec, set
``ESCROW_CODEC_KEYS_FILE=tests/replay/codec-test.keys``.

``fake`` and ``session``: the scripted Cotpay and a worker on a fresh task queue running the
workflow against it (script ``fake`` before starting an order; orders still open at the end are
terminated). ``sandbox`` and ``acts``: the real Cotpay sandbox and the real activities, for the
tests that call Cotpay instead of ``FakeCotpay``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from activities.cotpay_activities import CotpayActivities
from cotpay.client import CotpayClient
from runtime.codec import CodecSettings, escrow_data_converter
from sandbox.testing import RunningSandbox, running_sandbox
from tests.workflow.fake_cotpay import FakeCotpay
from tests.workflow.helpers import BUYER, IPN_SECRET, SELLER, Session, worker
from workflows.search_attributes import SEARCH_ATTRIBUTES


async def register_search_attributes(env: WorkflowEnvironment) -> None:
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                name: IndexedValueType.ValueType(kind.value)
                for name, kind in SEARCH_ATTRIBUTES.items()
            },
        )
    )


@pytest.fixture(scope="session")
async def env(temporal_test_server_bin: Path) -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(temporal_test_server_bin),
        data_converter=escrow_data_converter(CodecSettings()),
    )
    await register_search_attributes(environment)
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture
def fake() -> FakeCotpay:
    return FakeCotpay()


@pytest.fixture
async def session(env: WorkflowEnvironment, fake: FakeCotpay) -> AsyncIterator[Session]:
    async with worker(env, fake) as running:
        yield running


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[RunningSandbox]:
    """The Cotpay sandbox on loopback (payouts allowed at once) knowing SELLER and BUYER."""
    async with running_sandbox(tmp_path / "keys", payout_rule="immediate") as sb:
        for user in (SELLER, BUYER):
            r = await sb.admin.put(f"/sandbox/users/{user}", json={"name": "T"})
            assert r.status_code in (200, 201), r.text
        yield sb


@pytest.fixture
async def acts(sandbox: RunningSandbox) -> AsyncIterator[CotpayActivities]:
    """The real activities with the real client, calling the sandbox."""
    async with CotpayClient(sandbox.cotpay_settings()) as client:
        yield CotpayActivities(client, public_url="http://127.0.0.1:9", ipn_secret=IPN_SECRET)
