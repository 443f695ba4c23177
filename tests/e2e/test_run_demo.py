"""`cotpay-escrow demo` against `cotpay-escrow run --payout-rule immediate`, both as processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from runtime.temporal import TemporalConfig
from sandbox.testing import RunningSandbox
from starter.cli.demo import run_demo
from starter.stack.processes import ChildProcess, free_port

from .driver import API_KEY, E2EStack, cotpay_env, e2e_stack
from .run_process import CLI, clean_env, cli, wait_ready

pytestmark = pytest.mark.e2e


def _run_process(
    tmp_path: Path, env: dict[str, str] | None = None, payout_rule: str | None = "immediate"
) -> tuple[ChildProcess, str, str]:
    temporal, sandbox, gateway = free_port(), free_port(), free_port()
    rule = ["--payout-rule", payout_rule] if payout_rule else []
    run = ChildProcess(
        "run",
        [
            *CLI,
            "run",
            *rule,
            "--data-dir",
            str(tmp_path / "data"),
            "--headless",
            "--temporal-port",
            str(temporal),
            "--sandbox-port",
            str(sandbox),
            "--gateway-port",
            str(gateway),
        ],
        env={**clean_env(), **(env or {})},
        log_file=tmp_path / "run.log",
    )
    return run, f"http://127.0.0.1:{gateway}", f"http://127.0.0.1:{sandbox}"


def _children(pid: int) -> dict[int, str]:
    found: dict[int, str] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            found[int(child)] = cmdline.decode()
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status").read_text()
    return "State:\tZ" not in status


async def _demo(gateway_url: str, sandbox_url: str) -> str:
    code, text = await cli(
        "demo",
        "--gateway-url",
        gateway_url,
        "--sandbox-url",
        sandbox_url,
        "--timeout",
        "30",
        env=clean_env(),
        within=120,
    )
    assert code == 0, text
    assert "PAID_OUT" in text
    assert "exactly one payout" in text
    # The worker writes the order store, and its dispatcher sends the store's events: the demo's
    # receiver gets them signed, held before paid out (docs/webhooks.md).
    held = text.find("webhook  order.held")
    paid = text.find("webhook  order.paid_out")
    assert 0 <= held < paid, text
    assert "webhook event(s) received, every signature checked" in text, text
    return text


async def _order_in_store(gateway_url: str, demo_text: str) -> None:
    """The demo's order, read from the order store: in ``GET /v1/orders`` and the CSV export."""
    ref = re.search(r"^2\. order (\S+) started", demo_text, re.M)
    assert ref, demo_text
    order_ref = ref.group(1)
    headers = {"Authorization": "Bearer dev-api-key"}  # what `run` starts the gateway with
    async with httpx.AsyncClient(base_url=gateway_url, headers=headers, timeout=30) as http:
        listed = await http.get("/v1/orders", params={"status": "PAID_OUT"})
        assert listed.status_code == 200, listed.text
        assert order_ref in [o["orderRef"] for o in listed.json()["orders"]], listed.text
        today = datetime.now(UTC).date()
        csv = await http.get(
            "/v1/exports/orders.csv",
            params={
                "from": (today - timedelta(days=1)).isoformat(),
                "to": (today + timedelta(days=1)).isoformat(),
            },
        )
        assert csv.status_code == 200, csv.text
        assert order_ref in csv.text and "PAID_OUT" in csv.text, csv.text[:2000]


async def test_demo_reaches_paid_out_against_run(tmp_path: Path) -> None:
    """`make run` and `cotpay-escrow demo` as a new user types them: default rule t1-1600."""
    run, gateway_url, sandbox_url = _run_process(tmp_path, payout_rule=None)
    await run.start()
    try:
        await wait_ready(run, gateway_url, within=60)
        text = await _demo(gateway_url, sandbox_url)
        assert "payout rule t1-1600" in text and "sandbox clock restored" in text, text
        assert run.returncode is None, "run keeps going after the demo"
        await _order_in_store(gateway_url, text)

        assert run.process is not None
        run.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(run.wait(), 60)
        assert code == 0, run.log_tail(40)
        assert (tmp_path / "data" / "temporal.db").exists()
        assert (tmp_path / "data" / "keys" / "credentials.env").exists()
    finally:
        await run.stop(grace=30)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
async def test_run_stops_everything_when_a_part_dies(tmp_path: Path) -> None:
    run, gateway_url, _ = _run_process(tmp_path)
    await run.start()
    try:
        await wait_ready(run, gateway_url, within=60)
        assert run.pid is not None
        children = _children(run.pid)
        workers = [pid for pid, cmd in children.items() if " -m worker" in cmd]
        assert len(workers) == 1, children
        assert len(children) == 4, children

        os.kill(workers[0], signal.SIGKILL)
        code = await asyncio.wait_for(run.wait(), 60)
        assert code == 1, run.log_tail(40)
        assert "part_exited" in run.log_tail(40)
        assert not [pid for pid in children if _alive(pid)], "every part is stopped"
    finally:
        await run.stop(grace=30)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
async def test_run_with_another_cotpay_starts_no_sandbox(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    """``COTPAY_BASE_URL`` elsewhere (here: the session's sandbox, as if it were production)."""
    run, gateway_url, _ = _run_process(tmp_path, cotpay_env(sandbox.cotpay_settings()))
    await run.start()
    try:
        await wait_ready(run, gateway_url, within=60)
        assert run.pid is not None
        children = _children(run.pid).values()
        assert len(children) == 3, children
        assert not [cmd for cmd in children if " sandbox " in cmd], children
        assert "no sandbox started" in run.log_tail(40)
        await _demo(gateway_url, sandbox.base_url)
    finally:
        await run.stop(grace=30)


@pytest.fixture
async def t1_gateway(
    temporal_settings: TemporalConfig,
    temporal_client: Client,
    sandbox: RunningSandbox,
    stack: E2EStack,
) -> AsyncIterator[str]:
    """The session's worker runs the order; a second gateway starts it with rule t1-1600."""
    async with e2e_stack(
        temporal_settings, sandbox, client=temporal_client, worker=None, payout_rule="t1-1600"
    ) as t1:
        yield t1.gateway_url


async def test_demo_shift_clock_pays_out_under_t1_1600(
    t1_gateway: str, sandbox: RunningSandbox
) -> None:
    lines: list[str] = []
    code = await run_demo(
        t1_gateway,
        sandbox.base_url,
        api_key=API_KEY,
        step_timeout=30,
        shift_clock=True,
        out=lines.append,
    )
    text = "\n".join(lines)
    assert code == 0, text
    assert "payout rule t1-1600" in text
    assert "sandbox clock restored" in text
    assert "exactly one payout" in text
    clock = (await sandbox.admin.get("/sandbox/clock")).json()
    assert clock["offsetSeconds"] == 0


async def test_demo_without_shift_clock_says_what_it_waits_for(
    t1_gateway: str, sandbox: RunningSandbox
) -> None:
    lines: list[str] = []
    code = await run_demo(
        t1_gateway,
        sandbox.base_url,
        api_key=API_KEY,
        step_timeout=30,
        shift_clock=False,
        out=lines.append,
    )
    text = "\n".join(lines)
    assert code == 0, text
    assert "pays out not before" in text and "16:00 Vietnam time" in text
    assert "--shift-clock" in text


def _exports(banner: str) -> dict[str, str]:
    """The ``Other terminals  export A=1 B=2`` line of the banner, as variables."""
    line = next(x for x in banner.splitlines() if "Other terminals  export " in x)
    return dict(pair.split("=", 1) for pair in line.split("export ", 1)[1].split())


async def test_another_terminal_follows_the_banner(tmp_path: Path) -> None:
    """`run --payout-rule immediate`, then in another terminal what the banner says: `order
    start` takes the rule, `ops list` shows a failed order's reason and why it is COMPLETED,
    `api customer-id` reaches the sandbox with its credentials file."""
    run, gateway_url, sandbox_url = _run_process(tmp_path)
    await run.start()
    try:
        await wait_ready(run, gateway_url, within=60)
        exports = _exports(run.log_tail(60))
        assert exports["ESCROW_PAYOUT_RULE"] == "immediate"
        env = {**clean_env(), **exports}
        async with httpx.AsyncClient(base_url=sandbox_url) as admin:
            user = {"name": "Shop", "walletLinked": True, "bankLinked": True}
            for who in ("0911000001", "0922000002"):
                assert (await admin.put(f"/sandbox/users/{who}", json=user)).status_code < 300
        start = ["order", "start", "--buyer", "0922000002", "--amount", "150000", "--json"]
        code, text = await cli(*start, "cli-ok", "--seller", "0911000001", env=env)
        assert code == 0, text
        assert json.loads(text)["order"]["payoutRule"] == "immediate"

        code, text = await cli(*start, "cli-bad", "--seller", "0999999999", env=env)
        assert code == 1, text
        assert json.loads(text)["error"] == "cotpay_refused"
        code, text = await cli("ops", "list", env=env)
        assert code == 0, text
        failed = next(line for line in text.splitlines() if line.startswith("cli-bad"))
        assert "FAILED" in failed and "COMPLETED" in failed and "(10200)" in failed, text
        assert "shows it COMPLETED" in text

        credentials = tmp_path / "data" / "keys" / "credentials.env"
        api = ["api", "customer-id", "--partner-id", "0911000001", "--buyer-id", "0922000002"]
        code, text = await cli(*api, "--env-file", str(credentials), env=clean_env())
        assert code == 0, text
        assert json.loads(text[text.index("{") :])["code"] == 10100
        code, text = await cli(*api, env=clean_env())
        assert code == 2 and "--env-file .data/keys/credentials.env" in text, text
    finally:
        await run.stop(grace=30)
