"""``cotpay-escrow webhooks ...`` against an order store file: add (secret printed once), list,
disable/enable, rotate-secret, deliveries, resend, remove, dispatch --once; refusals print the
stable code."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from starter.cli import main
from store.access import AccessStore
from store.access_models import AuditFilter
from store.api import OrderStore
from store.models import StoreEvent
from tests.store.factories import write
from tests.webhooks.receiver import Receiver
from webhooks.events import event_id
from workflows.models import EscrowStatus


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def run_json(*argv: str) -> tuple[int, object]:
    """The command with ``--json`` as its own process: its whole stdout must be one JSON
    document (in this process, stdout also takes log lines of other parts of the session)."""
    done = cli_process(*argv, "--json")
    return done.returncode, json.loads(done.stdout)


def cli_process(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``cotpay-escrow`` as its own process, with this environment and ``env`` on top."""
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_webhooks_commands(
    store_url: str,
    store: OrderStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESCROW_DATABASE_URL", store_url)
    async with Receiver() as receiver:
        code, out, _ = await _in_thread(
            run, capsys, "webhooks", "add", receiver.url, "--events", "order.held,order.paid_out"
        )
        assert code == 0, out
        assert "Secret       whsec_" in out and "shown only now" in out
        endpoint = out.split()[1]
        assert endpoint.startswith("we_")

        code, listed = await _in_thread(run_json, "webhooks", "list")
        assert code == 0
        assert [e["id"] for e in listed["endpoints"]] == [endpoint]
        assert "secret" not in listed["endpoints"][0]

        code, out, _ = await _in_thread(run, capsys, "webhooks", "list")
        assert endpoint in out and "order.held,order.paid_out" in out

        now = datetime.now(UTC)
        await store.record(
            write(
                "cli-1",
                EscrowStatus.HELD,
                [
                    StoreEvent(
                        seq=1, time=now, kind="status", status=EscrowStatus.AWAITING_PAYMENT
                    ),
                    StoreEvent(seq=2, time=now, kind="status", status=EscrowStatus.HELD),
                ],
                created_at=now,
            )
        )
        done = await _dispatch_once(store_url)
        assert done.returncode == 0, done.stderr
        assert receiver.acknowledged_ids() == {event_id("cli-1", 2)}  # only subscribed types

        code, page = await _in_thread(run_json, "webhooks", "deliveries", endpoint)
        (delivery,) = page["deliveries"]
        assert delivery["status"] == "delivered" and delivery["lastStatusCode"] == 200
        code, out, _ = await _in_thread(run, capsys, "webhooks", "deliveries", endpoint)
        assert "order.held" in out and "delivered" in out

        code, out, _ = await _in_thread(
            run, capsys, "webhooks", "resend", endpoint, str(delivery["id"])
        )
        assert code == 0 and "queued to send now" in out
        await _dispatch_once(store_url)
        assert [r.event_id for r in receiver.requests] == [event_id("cli-1", 2)] * 2

        code, out, _ = await _in_thread(run, capsys, "webhooks", "resend", endpoint, "--all-failed")
        assert code == 0 and "0 failed deliveries queued again" in out

        code, out, _ = await _in_thread(run, capsys, "webhooks", "disable", endpoint)
        assert "disabled (manual)" in out
        code, out, _ = await _in_thread(run, capsys, "webhooks", "enable", endpoint)
        assert "State        enabled" in out

        code, rotated = await _in_thread(run_json, "webhooks", "rotate-secret", endpoint)
        assert rotated["secret"].startswith("whsec_")
        assert rotated["previousSecretExpiresAt"]

        code, out, _ = await _in_thread(run, capsys, "webhooks", "remove", endpoint)
        assert code == 0 and f"Removed {endpoint}" in out
        code, out, err = await _in_thread(run, capsys, "webhooks", "remove", endpoint)
        assert code == 1 and "error [endpoint_not_found]" in err

    # Every change is in the audit trail, by the terminal's user (docs/security.md).
    trail = await AccessStore(store.db).list_audit(AuditFilter(action="webhook_endpoint."))
    mine = [e for e in trail if e.target == endpoint]
    assert sorted(e.action for e in mine) == sorted(
        [
            "webhook_endpoint.create",
            "webhook_endpoint.resend",
            "webhook_endpoint.resend",
            "webhook_endpoint.update",
            "webhook_endpoint.update",
            "webhook_endpoint.rotate_secret",
            "webhook_endpoint.delete",
        ]
    )
    assert all(e.actor.startswith("cli:") and e.merchant == "default" for e in mine)


async def test_refusals_print_their_code(
    store_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCROW_DATABASE_URL", store_url)
    code, _out, err = await _in_thread(run, capsys, "webhooks", "add", "http://shop.example/hooks")
    assert code == 1 and "error [url_not_https]" in err
    code, _out, err = await _in_thread(
        run, capsys, "webhooks", "add", "https://shop.example/h", "--events", "order.shipped"
    )
    assert code == 1 and "error [unknown_event_type]" in err
    code, doc = await _in_thread(run_json, "webhooks", "disable", "we_0000")
    assert code == 1 and doc == {
        "error": "endpoint_not_found",
        "message": "no webhook endpoint we_0000",
    }
    monkeypatch.setenv("ESCROW_DATABASE_URL", "postgresql://u:secretpw@127.0.0.1:9/x")
    code, _out, err = await _in_thread(run, capsys, "webhooks", "list")
    assert code == 1 and "error [store_unavailable]" in err and "secretpw" not in err


async def _dispatch_once(store_url: str) -> subprocess.CompletedProcess[str]:
    """``webhooks dispatch`` configures the process's logging: run it as its own process."""
    done: subprocess.CompletedProcess[str] = await _in_thread(
        cli_process,
        "webhooks",
        "dispatch",
        "--once",
        ESCROW_DATABASE_URL=store_url,
        ESCROW_WEBHOOK_ATTEMPT_TIMEOUT="5",
    )
    return done


async def _in_thread(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The CLI runs its own event loop (asyncio.run): call it off this test's loop."""
    return await asyncio.to_thread(func, *args, **kwargs)
