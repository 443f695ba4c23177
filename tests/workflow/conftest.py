"""One time-skipping Temporal test server per session, with the escrow search attributes.

The environment uses the production data converter configured from the environment, as the
workers under test (``run_worker``, ``python worker.py``) do. The suite runs it without keys; to
run every workflow test through the encryption codec, set
``ESCROW_CODEC_KEYS_FILE=tests/replay/codec-test.keys``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from starter.codec import CodecSettings, escrow_data_converter
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
