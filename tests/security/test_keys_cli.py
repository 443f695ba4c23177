"""``cotpay-escrow keys`` and ``ops audit`` as an operator runs them (docs/security.md)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from starter.cli import main
from store.access import AccessStore

pytestmark = pytest.mark.timeout(180)


def cli_process(db: Path, *args: str) -> tuple[int, str, str]:
    """``cotpay-escrow ARGS`` as a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESCROW_", "COTPAY_"))}
    env["ESCROW_DATABASE_URL"] = f"sqlite+aiosqlite:///{db}"
    done = subprocess.run(
        [sys.executable, "-m", "starter.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return done.returncode, done.stdout, done.stderr


_capture: pytest.CaptureFixture[str] | None = None


@pytest.fixture(autouse=True)
def _in_process(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    global _capture
    _capture = capsys
    for name in list(os.environ):
        if name.startswith("ESCROW_"):
            monkeypatch.delenv(name)


def cli(db: Path, *args: str) -> tuple[int, str, str]:
    """``cotpay-escrow ARGS`` in this process (fast; same code as the entry point)."""
    assert _capture is not None
    os.environ["ESCROW_DATABASE_URL"] = f"sqlite+aiosqlite:///{db}"
    _capture.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exit:
        code = int(exit.code or 0)
    finally:
        del os.environ["ESCROW_DATABASE_URL"]
    out, err = _capture.readouterr()
    return code, out, err


def authenticates(db: Path, key: str) -> bool:
    async def check() -> bool:
        access = AccessStore.open(f"sqlite+aiosqlite:///{db}")
        try:
            return await access.authenticate(key) is not None
        finally:
            await access.close()

    return asyncio.run(check())


def cli_json(db: Path, *args: str) -> Any:
    code, out, err = cli(db, *args, "--json")
    assert code == 0, out + err
    return json.loads(out)


def test_create_list_rotate_revoke_and_audit(tmp_path: Path) -> None:
    db = tmp_path / "escrow.db"
    argv = ("keys", "create", "--merchant", "default", "--role", "shop", "--name", "shop-1")
    code, out, err = cli_process(db, *argv, "--json")
    assert code == 0, err
    created = json.loads(out)
    key = created["key"]
    assert key.startswith("cpe_")
    assert (created["name"], created["merchant"], created["role"]) == ("shop-1", "default", "shop")
    assert key not in db.read_bytes().decode("latin-1")  # only its hash is stored

    listed = cli_json(db, "keys", "list")
    assert [k["keyId"] for k in listed["keys"]] == [created["keyId"]]
    assert "key" not in listed["keys"][0] and key not in json.dumps(listed)

    code, text, _ = cli(db, "keys", "list")
    assert code == 0 and "shop-1" in text and key not in text

    assert authenticates(db, key)
    rotated = cli_json(db, "keys", "rotate", created["keyId"], "--grace", "1h")
    assert rotated["replaces"] == created["keyId"] and rotated["key"] != key
    assert authenticates(db, key)  # within the grace period
    assert authenticates(db, rotated["key"])
    revoked = cli_json(db, "keys", "revoke", rotated["keyId"])
    assert revoked["revokedAt"] is not None
    assert not authenticates(db, rotated["key"])

    code, out, _ = cli(db, "keys", "create", "--merchant", "nobody", "--role", "viewer", "--json")
    assert code == 1 and json.loads(out)["error"] == "unknown_merchant"
    code, out, _ = cli(db, "keys", "revoke", "ffffffffffff", "--json")
    assert code == 1 and json.loads(out)["error"] == "key_not_found"

    audit = cli_json(db, "ops", "audit")
    assert [e["action"] for e in audit["events"]] == ["key.revoke", "key.rotate", "key.create"]
    assert all(e["actor"].startswith("cli:") for e in audit["events"])
    assert key not in json.dumps(audit) and rotated["key"] not in json.dumps(audit)
    only = cli_json(db, "ops", "audit", "--action", "key.create")
    assert [e["target"] for e in only["events"]] == [created["keyId"]]
    code, text, _ = cli(db, "ops", "audit")
    assert code == 0 and "key.rotate" in text


def test_bad_role_and_duration_are_usage_errors(tmp_path: Path) -> None:
    db = tmp_path / "escrow.db"
    code, _, err = cli(db, "keys", "create", "--role", "admin")
    assert code == 2 and "invalid choice" in err
    code, _, err = cli(db, "keys", "create", "--role", "shop", "--expires-in", "soon")
    assert code == 2 and "not a duration" in err
