"""How ``cotpay-escrow run`` wires the parts from flags and environment (no processes)."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

import pytest

from runtime.settings import EscrowSettings
from starter.cli import demo as demo_cmd
from starter.cli import run as run_cmd
from starter.cli.output import command_name
from starter.stack import busy_ports
from starter.stack.devserver import SEARCH_ATTRIBUTES, dev_server_argv


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    run_cmd.register(parser.add_subparsers())
    return parser.parse_args(["run", *argv])


def test_defaults_wire_everything_locally(tmp_path: Path) -> None:
    plan = run_cmd.plan_from(_args("--data-dir", str(tmp_path)), {})
    assert plan.external_temporal is None and plan.external_cotpay is None
    assert plan.env["TEMPORAL_ADDRESS"] == "127.0.0.1:7233"
    assert plan.env["ESCROW_PUBLIC_URL"] == "http://127.0.0.1:8000"
    assert plan.env["ESCROW_GATEWAY_PORT"] == "8000"
    assert plan.env["ESCROW_PAYOUT_RULE"] == "t1-1600"
    assert plan.keys_dir == tmp_path.resolve() / "keys"
    text = run_cmd.banner(plan)
    for shown in ("http://127.0.0.1:8233", "http://127.0.0.1:8000", "http://127.0.0.1:8090"):
        assert shown in text
    assert "dev-api-key" in text
    assert (
        "Stuck orders     http://127.0.0.1:8233/namespaces/default/workflows"
        "?query=EscrowStatus%20%3D%20%22NEEDS_ATTENTION%22\n"
    ) in text
    assert f"Try:  {command_name()} demo\n" in text
    assert "ESCROW_PAYOUT_RULE=" not in text and "TEMPORAL_ADDRESS=" not in text  # defaults


def test_payout_rule_flag_beats_environment() -> None:
    env = {"ESCROW_PAYOUT_RULE": "business-t1-1600"}
    assert run_cmd.plan_from(_args(), env).payout_rule == "business-t1-1600"
    plan = run_cmd.plan_from(_args("--payout-rule", "immediate"), env)
    assert plan.payout_rule == "immediate" == plan.env["ESCROW_PAYOUT_RULE"]


@pytest.mark.parametrize(
    ("url", "external"),
    [
        ("https://cotpay.net", True),
        ("http://127.0.0.1:9999", True),
        ("http://127.0.0.1:8090", False),
        ("http://localhost:8090/", False),
    ],
)
def test_another_cotpay_means_no_sandbox(url: str, external: bool) -> None:
    plan = run_cmd.plan_from(_args(), {"COTPAY_BASE_URL": url, "COTPAY_APP_ID": "app"})
    assert (plan.external_cotpay is not None) is external
    assert plan.env["COTPAY_APP_ID"] == "app"
    if external:
        assert "no sandbox started" in run_cmd.banner(plan)


def test_another_temporal_means_no_dev_server() -> None:
    plan = run_cmd.plan_from(_args(), {"TEMPORAL_ADDRESS": "temporal.example:7233"})
    assert plan.external_temporal == "temporal.example:7233"
    assert plan.env["TEMPORAL_ADDRESS"] == "temporal.example:7233"
    same = run_cmd.plan_from(_args(), {"TEMPORAL_ADDRESS": "localhost:7233"})
    assert same.external_temporal is None


def test_explicit_public_url_is_kept_and_secrets_are_not_printed() -> None:
    env = {"ESCROW_PUBLIC_URL": "https://shop.example/escrow", "ESCROW_API_KEYS": "s3cret,old"}
    plan = run_cmd.plan_from(_args(), env)
    assert plan.env["ESCROW_PUBLIC_URL"] == "https://shop.example/escrow"
    assert "s3cret" not in run_cmd.banner(plan)


def test_non_default_ports_reach_the_suggested_demo_command() -> None:
    plan = run_cmd.plan_from(
        _args("--gateway-port", "18000", "--sandbox-port", "18090", "--ui-port", "18233"), {}
    )
    assert (
        f"{command_name()} demo --gateway-url http://127.0.0.1:18000 "
        "--sandbox-url http://127.0.0.1:18090 --ui-url http://127.0.0.1:18233"
    ) in run_cmd.banner(plan)


def test_busy_ports_are_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        plan = run_cmd.plan_from(_args("--gateway-port", str(port)), {})
        assert f"gateway port {port}" in busy_ports(plan)


def test_dev_server_argv_registers_every_search_attribute(tmp_path: Path) -> None:
    argv = dev_server_argv(port=7233, ui_port=None, db_file=tmp_path / "t.db")
    assert "--headless" in argv and str(tmp_path / "t.db") in argv
    for key, kind in SEARCH_ATTRIBUTES:
        assert f"{key}={kind}" in argv
    assert argv[argv.index("--ip") + 1] == "127.0.0.1"


def test_demo_without_a_stack_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    parser = argparse.ArgumentParser()
    demo_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["demo", "--gateway-url", f"http://127.0.0.1:{port}"])
    args.sandbox_url = f"http://127.0.0.1:{port}"
    assert args.func(args) == 1
    assert "is `cotpay-escrow run` running?" in capsys.readouterr().err


def test_the_order_store_lives_in_the_data_dir_unless_set(tmp_path: Path) -> None:
    plan = run_cmd.plan_from(_args("--data-dir", str(tmp_path)), {})
    assert plan.env["ESCROW_DATABASE_URL"] == f"sqlite+aiosqlite:///{tmp_path.resolve()}/escrow.db"
    url = "postgresql+asyncpg://escrow:pw@db.internal:5432/escrow"
    plan = run_cmd.plan_from(_args("--data-dir", str(tmp_path)), {"ESCROW_DATABASE_URL": url})
    assert plan.env["ESCROW_DATABASE_URL"] == url


def test_the_banner_names_the_cli_as_it_can_be_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not activated: the venv's script by its path; activated (on PATH): by its name."""
    venv_bin = Path(sys.prefix) / "bin"
    monkeypatch.chdir(venv_bin.parent.parent)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert command_name() == f"{venv_bin.parent.name}/bin/cotpay-escrow"
    text = run_cmd.banner(run_cmd.plan_from(_args(), {}))
    assert f"Try:  {venv_bin.parent.name}/bin/cotpay-escrow demo" in text
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")
    assert command_name() == "cotpay-escrow"


def test_the_banner_says_what_other_terminals_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The payout rule of ``run`` reaches ``order start`` in another terminal through the
    printed line; so do a Temporal port and the key ring that are not the defaults."""
    plan = run_cmd.plan_from(
        _args(
            "--payout-rule", "immediate", "--temporal-port", "17233", "--data-dir", str(tmp_path)
        ),
        {},
    )
    exports = run_cmd.cli_environment(plan)
    assert exports == {
        "ESCROW_CODEC_KEYS_FILE": str(tmp_path.resolve() / "codec.keys"),
        "ESCROW_PAYOUT_RULE": "immediate",
        "TEMPORAL_ADDRESS": "127.0.0.1:17233",
    }
    line = next(x for x in run_cmd.banner(plan).splitlines() if "export " in x)
    assert line.split("export ", 1)[1].split() == [f"{k}={v}" for k, v in exports.items()]
    for key, value in exports.items():
        monkeypatch.setenv(key, value)
    assert EscrowSettings().payout_rule == "immediate"  # what `order start` then fixes in
