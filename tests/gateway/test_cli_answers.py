"""What the ``order`` commands print when things go wrong: a failed start, a closed pipe."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from tests.gateway.conftest import UNKNOWN_SELLER_PREFIX, new_ref
from tests.gateway.test_cli_and_server import ROOT, cli, cli_env

__all__ = ["cli_env"]  # the fixture, shared with test_cli_and_server

pytestmark = pytest.mark.timeout(120)


def start_args(ref: str, seller: str) -> list[str]:
    return [
        "order",
        "start",
        ref,
        "--seller",
        seller,
        "--buyer",
        "0922000002",
        "--amount",
        "150000",
    ]


async def test_a_failed_start_prints_the_failure_and_its_reason(cli_env: dict[str, str]) -> None:
    ref = new_ref("cli")
    seller = f"{UNKNOWN_SELLER_PREFIX}1234567"
    code, out, err = await cli(cli_env, *start_args(ref, seller))
    assert code == 1, err
    assert "Created." not in out
    first = out.splitlines()[0]
    assert first.startswith("Failed [cotpay_refused]: "), out
    assert "SellerNotFound (10200)" in first
    assert "Status             FAILED" in out
    attention = next(line for line in out.splitlines() if line.startswith("Attention"))
    assert attention.count("10200") == 1, attention  # the code once, not twice

    code, out, _err = await cli(cli_env, *start_args(ref, seller), "--json")
    assert code == 1
    document = json.loads(out)
    assert document["error"] == "cotpay_refused"
    assert "10200" in document["message"]
    assert document["order"]["status"] == "FAILED"


async def test_status_into_a_closed_pipe_exits_quietly(cli_env: dict[str, str]) -> None:
    ref = new_ref("cli")
    code, _out, err = await cli(cli_env, *start_args(ref, "0911000001"))
    assert code == 0, err
    # `true` exits without reading: every write of the CLI meets a closed pipe (EPIPE).
    script = (
        f'"{sys.executable}" -m starter.cli order status {ref} | true; echo "${{PIPESTATUS[0]}}"'
    )
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        script,
        cwd=ROOT,
        env=cli_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err_bytes = await asyncio.wait_for(process.communicate(), timeout=60)
    assert err_bytes.decode() == "", err_bytes.decode()
    assert out.decode().strip() == "141"
