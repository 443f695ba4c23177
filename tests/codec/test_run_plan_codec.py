"""How ``cotpay-escrow run`` plans payload encryption and the codec server (no processes)."""

from __future__ import annotations

import argparse
import socket
import stat
from pathlib import Path

import pytest

from runtime.codec import CodecSettings
from starter.cli import run as run_cmd
from starter.stack import StackPlan, busy_ports, ensure_key_file


def plan(tmp_path: Path, *argv: str, env: dict[str, str] | None = None) -> StackPlan:
    parser = argparse.ArgumentParser()
    run_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["run", "--data-dir", str(tmp_path), *argv])
    return run_cmd.plan_from(args, env or {})


def test_default_generates_keys_and_serves_the_ui(tmp_path: Path) -> None:
    p = plan(tmp_path)
    keys = tmp_path.resolve() / "codec.keys"
    assert p.codec_keys_file == keys
    assert p.env["ESCROW_CODEC_KEYS_FILE"] == str(keys)
    assert p.encrypted and p.codec_server
    assert p.codec_token and len(p.codec_token) >= 24
    assert p.ui_origin == "http://127.0.0.1:8233"
    text = run_cmd.banner(p)
    assert "Codec server     http://127.0.0.1:8081" in text
    assert f"export ESCROW_CODEC_KEYS_FILE={keys}" in text
    assert p.codec_token not in text
    assert "Metrics          http://127.0.0.1:8000/metrics" in text


def test_headless_encrypts_without_a_codec_server(tmp_path: Path) -> None:
    p = plan(tmp_path, "--headless")
    assert p.encrypted and not p.codec_server and p.codec_token is None
    assert "Codec server" not in run_cmd.banner(p)


def test_configured_keys_and_token_are_kept(tmp_path: Path) -> None:
    env = {"ESCROW_CODEC_KEYS": "ops:" + "A" * 43 + "=", "ESCROW_CODEC_TOKEN": "tok"}
    p = plan(tmp_path, env=env)
    assert p.codec_keys_file is None and "ESCROW_CODEC_KEYS_FILE" not in p.env
    assert p.codec_token == "tok" and p.codec_server
    assert "from ESCROW_CODEC_KEYS" in run_cmd.banner(p)


def test_plain_payloads_and_external_temporal(tmp_path: Path) -> None:
    plain = plan(tmp_path, "--plain-payloads", env={"ESCROW_CODEC_KEYS_FILE": "/x"})
    assert not plain.encrypted and not plain.codec_server
    assert "not encrypted" in run_cmd.banner(plain)
    external = plan(tmp_path, env={"TEMPORAL_ADDRESS": "temporal.example:7233"})
    assert not external.encrypted and not external.codec_server


def test_codec_port_is_checked_when_busy(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"codec server port {port}" in busy_ports(plan(tmp_path, "--codec-port", str(port)))


def test_key_file_is_written_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "codec.keys"
    ensure_key_file(path)
    first = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ensure_key_file(path)
    assert path.read_text() == first
    ring = CodecSettings(keys=None, keys_file=path).key_ring()
    assert ring is not None and ring.current.startswith("local-")


def test_unusable_key_file_stops_run(tmp_path: Path) -> None:
    path = tmp_path / "codec.keys"
    path.write_text("not a key ring\n")
    with pytest.raises(RuntimeError, match="unusable"):
        ensure_key_file(path)
