"""``cotpay-escrow run`` with the web UI: payloads encrypted, the UI decrypts via the codec server.

One ``run`` process on free ports with a fresh data dir: the key ring is generated (0600), the
embedded UI's settings name the codec server, the history Temporal stores is unreadable without
the key, the codec server decodes it for the UI's origin only, and a CLI in another terminal
reads the order with ``ESCROW_CODEC_KEYS_FILE`` as the banner says.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from google.protobuf.json_format import MessageToDict
from temporalio.client import Client

from starter.stack.processes import ChildProcess, free_port
from tests.e2e.run_process import CLI, clean_env, cli, wait_ready
from workflows.models import workflow_id_for

pytestmark = pytest.mark.e2e

TOKEN = "run-codec-test-token"
BUYER_NAME = "Vo Thi Lan"
BUYER_EMAIL = "lan.vo@example.vn"


@dataclass
class RunningStack:
    run: ChildProcess
    data: Path
    temporal: str
    ui: str
    codec: str
    gateway: str
    sandbox: str


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningStack]:
    work = tmp_path_factory.mktemp("run-codec")
    ports = {name: free_port() for name in ("temporal", "ui", "codec", "sandbox", "gateway")}
    argv = [*CLI, "run", "--payout-rule", "immediate", "--data-dir", str(work / "data")]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    run = ChildProcess(
        "run", argv, env={**clean_env(), "ESCROW_CODEC_TOKEN": TOKEN}, log_file=work / "run.log"
    )
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    await run.start()
    try:
        await wait_ready(run, url["gateway"], within=60, tail=60)
        yield RunningStack(
            run=run,
            data=work / "data",
            temporal=f"127.0.0.1:{ports['temporal']}",
            ui=url["ui"],
            codec=url["codec"],
            gateway=url["gateway"],
            sandbox=url["sandbox"],
        )
    finally:
        await run.stop(grace=30)


async def start_order(stack: RunningStack) -> str:
    ref = f"ui-{os.urandom(4).hex()}"
    seller, buyer = "09" + ref[-8:].translate(str.maketrans("abcdef", "123456")), "0933000044"
    async with httpx.AsyncClient(timeout=30) as http:
        for user in (seller, buyer):
            r = await http.put(
                f"{stack.sandbox}/sandbox/users/{user}",
                json={"name": "UI test", "walletLinked": True, "bankLinked": True},
            )
            assert r.status_code < 300, r.text
        r = await http.post(
            f"{stack.gateway}/v1/orders",
            headers={"Authorization": "Bearer dev-api-key"},
            json={
                "orderRef": ref,
                "sellerId": seller,
                "buyerId": buyer,
                "amount": 99_000,
                "description": "codec through run",
                "buyer": {"name": BUYER_NAME, "email": BUYER_EMAIL},
            },
        )
    assert r.status_code == 201, r.text
    return ref


def test_key_ring_is_generated_private_and_announced(stack: RunningStack) -> None:
    keys = stack.data / "codec.keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert f"export ESCROW_CODEC_KEYS_FILE={keys.resolve()}" in stack.run.log_tail(60)
    assert stack.codec in stack.run.log_tail(60)
    assert TOKEN not in stack.run.log_tail(200)


async def test_embedded_ui_is_pointed_at_the_codec_server(stack: RunningStack) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        settings = (await http.get(f"{stack.ui}/api/v1/settings")).json()
    assert settings["Codec"]["Endpoint"] == f"{stack.codec}/t/{TOKEN}"


async def test_history_is_encrypted_and_the_ui_codec_decrypts_it(stack: RunningStack) -> None:
    ref = await start_order(stack)
    plain = await Client.connect(stack.temporal)
    history = await plain.get_workflow_handle(workflow_id_for(ref)).fetch_history()
    raw = history.to_json()
    assert BUYER_NAME not in raw and BUYER_EMAIL not in raw
    started = MessageToDict(history.events[0].workflow_execution_started_event_attributes.input)
    endpoint = f"{stack.codec}/t/{TOKEN}/decode"
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.post(endpoint, json=started, headers={"Origin": stack.ui})
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == stack.ui
        foreign = await http.post(endpoint, json=started, headers={"Origin": "http://evil.test"})
        assert foreign.status_code == 403
    [decoded] = r.json()["payloads"]
    order = json.loads(base64.b64decode(decoded["data"]))
    assert order["buyer"] == {"name": BUYER_NAME, "email": BUYER_EMAIL}


async def test_cli_in_another_terminal_reads_orders_with_the_key_file(stack: RunningStack) -> None:
    ref = await start_order(stack)
    env = {**clean_env(), "TEMPORAL_ADDRESS": stack.temporal}
    code, out = await cli("order", "status", ref, env=env)
    assert code == 1, out
    assert "ESCROW_CODEC_KEYS_FILE" in out and "Traceback" not in out
    keys = {"ESCROW_CODEC_KEYS_FILE": str(stack.data / "codec.keys")}
    code, out = await cli("order", "status", ref, "--json", env={**env, **keys})
    assert code == 0, out
    assert json.loads(out)["orderRef"] == ref
