"""The ``order``/``ops`` commands in a subprocess, and the gateway on a real loopback socket."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from cotpay.ipn import ipn_signature
from cotpay.settings import CotpaySettings
from runtime.settings import EscrowSettings
from starter.gateway.server import running_gateway
from tests.gateway.conftest import API_KEYS, IPN_SECRET, Backend, new_ref, order_body

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cli_env(backend: Backend) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "ESCROW_"))}
    environ["TEMPORAL_ADDRESS"] = backend.address
    environ["TEMPORAL_TASK_QUEUE"] = backend.task_queue
    return environ


async def cli(environ: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter.cli",
        *args,
        cwd=ROOT,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_order_commands(cli_env: dict[str, str]) -> None:
    ref = new_ref("cli")
    code, out, err = await cli(
        cli_env,
        "order",
        "start",
        ref,
        "--seller",
        "0911000001",
        "--buyer",
        "0922000002",
        "--amount",
        "150000",
        "--json",
    )
    assert code == 0, err
    started: dict[str, Any] = json.loads(out)
    assert started["created"] is True
    assert started["order"]["status"] == "AWAITING_PAYMENT"

    code, out, err = await cli(cli_env, "order", "status", ref)
    assert code == 0, err
    assert "AWAITING_PAYMENT" in out, out
    assert "150,000 VND" in out
    assert "Timeline" in out

    code, out, err = await cli(cli_env, "order", "deliver", ref)
    assert code == 1
    assert "invalid_state" in err

    code, out, err = await cli(
        cli_env, "order", "cancel", ref, "--reason", "out of stock", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["status"] == "CANCELLED"

    code, out, err = await cli(cli_env, "order", "status", new_ref("cli"), "--json")
    assert code == 1, out
    assert json.loads(out)["error"] == "order_not_found", out

    code, out, err = await cli(cli_env, "ops", "release", ref)
    assert code == 1, out
    assert "invalid_state" in err, err


async def test_ops_list_without_visibility_says_so(cli_env: dict[str, str]) -> None:
    code, _out, err = await cli(cli_env, "ops", "list", "--status", "NEEDS_ATTENTION")
    assert code == 1
    assert "visibility_unavailable" in err


async def test_order_start_refuses_bad_input_locally(cli_env: dict[str, str]) -> None:
    code, _out, err = await cli(
        cli_env, "order", "start", "bad ref", "--seller", "1", "--buyer", "2", "--amount", "10"
    )
    assert code == 1
    assert "invalid_request" in err


async def test_gateway_on_a_socket_logs_no_secrets(
    backend: Backend,
    escrow_settings: EscrowSettings,
    merchant_key_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cotpay = CotpaySettings(private_key_file=merchant_key_file)
    body = order_body(buyer={"name": "Nguyen Van An", "email": "an@example.vn"})
    async with (
        running_gateway(
            backend.client, escrow_settings, cotpay, task_queue=backend.task_queue
        ) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        created = await http.post(
            "/v1/orders", json=body, headers={"authorization": f"Bearer {API_KEYS[0]}"}
        )
        assert created.status_code == 201, created.text
        sig = ipn_signature(IPN_SECRET, body["orderRef"], "verify")
        ipn = await http.post(
            f"/ipn/{body['orderRef']}/verify?sig={sig}", json={"status": "HOLDING"}
        )
        assert ipn.status_code == 200
        assert (await http.get("/healthz")).status_code == 200
        assert "server" not in created.headers
    logged = capsys.readouterr()
    text = logged.out + logged.err
    assert "route=/v1/orders" in text or '"route": "/v1/orders"' in text
    assert "/ipn/{order_ref}/{step}" in text
    for secret in (sig, API_KEYS[0], "an@example.vn", "Nguyen Van An", IPN_SECRET):
        assert secret not in text
