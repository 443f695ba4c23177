"""Keys and credentials.env on first start and after; the ``cotpay-escrow sandbox`` command."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from pathlib import Path

import httpx

from cotpay.settings import CotpaySettings
from sandbox.keys import ensure_keys
from sandbox.testing import running_sandbox
from starter.cli import build_parser
from tests.sandbox.helpers import held_order, sandbox_and_client, wait_ipns
from tests.sandbox.receiver import ipn_receiver

FILES = ["cotpay_private.pem", "cotpay_public.pem", "merchant_private.pem", "merchant_public.pem"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_keys_written_once_and_reused(tmp_path: Path):
    keys_dir = tmp_path / "keys"
    async with running_sandbox(keys_dir) as sb:
        first_url = sb.base_url
        env = dict(
            line.split("=", 1) for line in sb.credentials_file.read_text().strip().splitlines()
        )
    assert sorted(env) == sorted(
        [
            "COTPAY_BASE_URL",
            "COTPAY_APP_ID",
            "COTPAY_ACCESS_TOKEN",
            "COTPAY_PUBLIC_KEY_FILE",
            "COTPAY_PRIVATE_KEY_FILE",
            "COTPAY_ENVELOPE",
        ]
    )
    assert env["COTPAY_BASE_URL"] == first_url and env["COTPAY_ENVELOPE"] == "encrypted"
    assert Path(env["COTPAY_PUBLIC_KEY_FILE"]).is_absolute()
    assert env["COTPAY_PRIVATE_KEY_FILE"].endswith("merchant_private.pem")
    assert len(env["COTPAY_ACCESS_TOKEN"]) >= 32
    for name in FILES:
        assert (keys_dir / name).exists()
    for name in ["cotpay_private.pem", "merchant_private.pem", "credentials.env"]:
        assert _mode(keys_dir / name) == 0o600
    pems = {name: (keys_dir / name).read_bytes() for name in FILES}
    again = ensure_keys(keys_dir)
    assert again.app_id == env["COTPAY_APP_ID"] and again.access_token == env["COTPAY_ACCESS_TOKEN"]
    assert {name: (keys_dir / name).read_bytes() for name in FILES} == pems
    settings = CotpaySettings.model_validate(
        {k.removeprefix("COTPAY_").lower(): v for k, v in env.items()}
    )
    assert settings.access_token.get_secret_value() == again.access_token


async def test_pending_ipns_resume_after_restart(keys_dir: Path, tmp_path: Path):
    db = tmp_path / "ipn.db"
    async with ipn_receiver(ensure_keys(keys_dir), script=[500] * 50) as rx:
        async with sandbox_and_client(keys_dir, payout_rule="immediate", db=db) as (sb, client):
            id_order = await held_order(sb, client, ipn=rx.url("resume", "verify"))
            for _ in range(200):
                if rx.answers:
                    break
                await asyncio.sleep(0.02)
        rx.script.clear()
        async with running_sandbox(keys_dir, payout_rule="immediate", db=db) as sb:
            ipns = await wait_ipns(sb, id_order, 1)
    assert ipns[0]["deliveredAt"] and ipns[0]["attempts"] >= 2
    assert rx.answers[-1] == 200


def test_cli_registers_sandbox_command():
    args = build_parser().parse_args(
        ["sandbox", "--port", "0", "--payout-rule", "immediate", "--envelope", "plain"]
    )
    assert args.port == 0 and args.payout_rule == "immediate" and args.envelope == "plain"
    assert args.host == "127.0.0.1" and args.db is None and callable(args.func)


async def test_cli_serves_until_interrupted(tmp_path: Path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter.cli",
        "sandbox",
        "--port",
        "0",
        "--keys-dir",
        str(tmp_path / "keys"),
        "--db",
        str(tmp_path / "sb.db"),
        "--public-url",
        "http://sandbox.internal:8090",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("Cotpay sandbox on http://127.0.0.1:"), line
        base_url = line.split()[-1]
        creds = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert str(tmp_path / "keys" / "credentials.env") in creds
        env = (tmp_path / "keys" / "credentials.env").read_text()
        assert "COTPAY_BASE_URL=http://sandbox.internal:8090\n" in env
        async with httpx.AsyncClient(base_url=base_url) as http:
            health = (await http.get("/sandbox/health")).json()
        assert health["status"] == "ok" and health["persistent"] is True
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        _, stderr = await proc.communicate()
        token = ensure_keys(tmp_path / "keys").access_token
        assert token not in stderr.decode() and "sandbox.started" in stderr.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
