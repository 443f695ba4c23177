"""The real order workflow with payload encryption on: what Temporal stores is unreadable.

A fresh dev server, the sandbox, the real gateway and an in-process worker, all with one key ring
(``ESCROW_CODEC_KEYS`` in the environment, as in production). The raw history, fetched by a
client without the codec, must not contain the buyer's name, email or phone-number id.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.json_format import MessageToDict
from temporalio.client import Client

from runtime.codec import CodecSettings, escrow_data_converter
from runtime.codec_server import create_codec_app, ui_codec_endpoint
from runtime.temporal import TemporalConfig, connect
from sandbox.testing import RunningSandbox, running_sandbox
from starter.stack.devserver import DevServer
from tests.e2e.driver import E2EStack, e2e_stack
from tests.support import make_key, serve
from workflows.models import EscrowStatus, workflow_id_for
from workflows.pseudonym import search_id_hex_salt
from workflows.search_attributes import BUYER_ID, SELLER_ID

pytestmark = pytest.mark.e2e

BUYER_NAME = "Pham Minh Chau"
BUYER_EMAIL = "chau.pham@example.vn"
KEYS = f"prod-1:{make_key()}"
SEARCH_KEY = "production-test-search-key"


@pytest.fixture(scope="module")
def codec_env() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ESCROW_CODEC_KEYS", KEYS)
        patch.setenv("ESCROW_PSEUDONYMIZE_SEARCH", "true")
        patch.setenv("ESCROW_SEARCH_KEY", SEARCH_KEY)
        yield CodecSettings()


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    work = tmp_path_factory.mktemp("encrypted")
    dev = DevServer(work / "temporal.db", log_file=work / "temporal.log")
    await dev.start()
    try:
        yield dev
    finally:
        await dev.stop()


@pytest.fixture(scope="module")
async def encrypted_stack(
    codec_env: CodecSettings, server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[E2EStack]:
    temporal = TemporalConfig(address=server.address, namespace="default")
    client = await connect(temporal)
    keys: Path = tmp_path_factory.mktemp("encrypted-keys")
    sandbox: RunningSandbox
    async with (
        running_sandbox(keys, payout_rule="immediate") as sandbox,
        e2e_stack(temporal, sandbox, client=client) as stack,
    ):
        yield stack


async def raw_history(address: str, workflow_id: str) -> str:
    plain = await Client.connect(address)
    history = await plain.get_workflow_handle(workflow_id).fetch_history()
    return history.to_json()


async def paid_out_order(stack: E2EStack) -> tuple[dict[str, Any], str]:
    body = await stack.order_body("enc", buyer={"name": BUYER_NAME, "email": BUYER_EMAIL})
    view = await stack.started("enc", buyer=body["buyer"])
    await stack.pay(view["cotpayOrderId"])
    await stack.wait_status(view["orderRef"], EscrowStatus.HELD)
    r = await stack.http.post(f"/v1/orders/{view['orderRef']}/delivered", json={})
    assert r.status_code == 200, r.text
    done = await stack.wait_status(view["orderRef"], EscrowStatus.PAID_OUT)
    return done, view["orderRef"]


async def test_history_payloads_are_encrypted(
    encrypted_stack: E2EStack, server: DevServer, codec_env: CodecSettings
) -> None:
    assert encrypted_stack.temporal.data_converter.payload_codec is not None
    done, ref = await paid_out_order(encrypted_stack)
    assert done["status"] == EscrowStatus.PAID_OUT
    history = await raw_history(server.address, workflow_id_for(ref))
    assert "YmluYXJ5L2VuY3J5cHRlZA" in history  # base64 of binary/encrypted
    for secret in (BUYER_NAME, BUYER_EMAIL):
        assert secret not in history


async def test_codec_server_shows_the_started_order(
    encrypted_stack: E2EStack, server: DevServer, codec_env: CodecSettings
) -> None:
    view = await encrypted_stack.started("ui", buyer={"name": BUYER_NAME, "email": BUYER_EMAIL})
    plain = await Client.connect(server.address)
    events = (await plain.get_workflow_handle(view["workflowId"]).fetch_history()).events
    started = MessageToDict(events[0].workflow_execution_started_event_attributes.input)
    codec = escrow_data_converter(codec_env).payload_codec
    assert codec is not None
    async with (
        serve(create_codec_app(codec, "http://127.0.0.1:8233", "ui-token")) as url,
        httpx.AsyncClient(timeout=5) as http,
    ):
        r = await http.post(f"{ui_codec_endpoint(url, 'ui-token')}/decode", json=started)
    assert r.status_code == 200, r.text
    [decoded] = r.json()["payloads"]
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"
    order = json.loads(base64.b64decode(decoded["data"]))
    assert order["buyer"] == {"name": BUYER_NAME, "email": BUYER_EMAIL}
    assert order["orderRef"] == view["orderRef"]


async def test_search_attributes_hold_pseudonyms(
    encrypted_stack: E2EStack, server: DevServer, codec_env: CodecSettings
) -> None:
    done, ref = await paid_out_order(encrypted_stack)
    history = await raw_history(server.address, workflow_id_for(ref))
    salt = codec_env.search_salt_hex()
    assert salt is not None
    for user in (done["sellerId"], done["buyerId"]):
        assert user not in history
    handle = encrypted_stack.temporal.get_workflow_handle(workflow_id_for(ref))
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(SELLER_ID) == search_id_hex_salt(done["sellerId"], salt)
    assert attributes.get(BUYER_ID) == search_id_hex_salt(done["buyerId"], salt)
