"""``cotpay-escrow api``: flags from the request models, validation, env file, exit codes."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from cotpay import cli
from cotpay.client import CotpayClient
from cotpay.settings import CotpaySettings

IPN = "https://shop.example/ipn/o-1/verify?sig=abc"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="cotpay-escrow")
    cli.register(root.add_subparsers(dest="command"))
    return root


class Recorder:
    def __init__(self, answer: Any = None, status: int = 200, error: Exception | None = None):
        self.answer = answer if answer is not None else {"code": 10100, "message": "Thành công"}
        self.status = status
        self.error = error
        self.requests: list[httpx.Request] = []
        self.settings: list[CotpaySettings] = []

    def client(self, settings: CotpaySettings) -> CotpayClient:
        self.settings.append(settings)
        return CotpayClient(settings, transport=httpx.MockTransport(self.handler))

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return httpx.Response(self.status, json=self.answer)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    rec = Recorder()
    monkeypatch.setattr(cli, "CotpayClient", rec.client)
    monkeypatch.setattr(cli, "configure_logging", lambda: None)
    monkeypatch.setenv("COTPAY_ENVELOPE", "plain")
    monkeypatch.setenv("COTPAY_BASE_URL", "http://cotpay.test")
    with capture_logs():
        yield rec


def run(*argv: str) -> int:
    args = parser().parse_args(["api", *argv])
    code: int = args.func(args)
    return code


VERIFY = [
    "verify-order",
    "--id-order",
    "12",
    "--partner-id",
    "S1234567",
    "--buyer-id",
    "0912345678",
    "--pay-method",
    "VIETQR",
    "--ipn-url",
    IPN,
]


def test_one_subcommand_per_endpoint_with_kebab_flags() -> None:
    root = parser()
    for name, flags in {
        "create-order": ["--partner-id", "--buyer-id", "--amount", "--desc", "--ipn-url"],
        "customerID": ["--partner-id", "--buyer-id"],
        "verify-order": ["--id-order", "--pay-method", "--ipn-url"],
        "payment": ["--id-order"],
        "return-request": ["--id-order"],
        "sign-up": ["--name", "--email", "--phone", "--agent-id"],
    }.items():
        args = root.parse_args(["api", name])
        assert args.api_endpoint.name == name
        for flag in flags:
            dest = "field:" + "".join(
                part if i == 0 else part.title() for i, part in enumerate(flag[2:].split("-"))
            )
            assert dest in vars(args), (name, flag)


def test_integers_are_parsed_as_int() -> None:
    args = parser().parse_args(["api", *VERIFY])
    assert vars(args)["field:idOrder"] == 12


@pytest.mark.parametrize(
    "argv",
    [
        ["verify-order", "--id-order", "twelve"],
        ["verify-order", "--pay-method", "MOMO"],
        ["create-order", "--amount", "30000.5"],
        ["refund-everything"],
    ],
)
def test_bad_flag_values_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parser().parse_args(["api", *argv])
    assert caught.value.code == 2


def test_success_prints_pretty_unescaped_json_and_exits_0(
    recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder.answer = {"code": 10100, "message": "Thành công", "data": "qr://x"}
    assert run(*VERIFY) == 0
    out = capsys.readouterr().out
    assert "Thành công" in out
    assert json.loads(out) == recorder.answer
    assert out.startswith("{\n  ")
    (request,) = recorder.requests
    assert request.url == "http://cotpay.test/api/web-ecommerce/verify-order"
    assert json.loads(request.content) == {
        "idOrder": 12,
        "partnerId": "S1234567",
        "buyerId": "0912345678",
        "payMethod": "VIETQR",
        "ipnUrl": IPN,
    }


def test_other_code_prints_answer_and_exits_1(
    recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder.answer = {"code": 10700, "message": "Không tìm thấy đơn hàng"}
    assert run(*VERIFY) == 1
    assert json.loads(capsys.readouterr().out)["code"] == 10700


def test_validation_error_exits_2_naming_the_flags(
    recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run("create-order", "--partner-id", "S1", "--amount", "29999", "--buyer-id", "B" * 11)
    assert code == 2
    err = capsys.readouterr().err
    assert "--amount" in err and "30000" in err
    assert "--buyer-id" in err and "--ipn-url" in err and "--desc" in err
    assert recorder.requests == []


def test_skip_validation_sends_flags_as_given(
    recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder.answer = {"code": 10500, "message": "amount"}
    assert run("create-order", "--skip-validation", "--amount", "5") == 1
    assert json.loads(recorder.requests[0].content) == {"amount": 5}


def test_transport_error_exits_1(recorder: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    recorder.error = httpx.ConnectError("refused")
    assert run(*VERIFY) == 1
    assert "connection failed" in capsys.readouterr().err


def test_env_file_wins_and_resolves_key_paths(
    recorder: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / "keys" / "credentials.env"
    env.parent.mkdir()
    env.write_text(
        "# written by the sandbox\n"
        "\n"
        "COTPAY_BASE_URL=http://127.0.0.1:9\n"
        "export COTPAY_APP_ID='app-1'\n"
        'COTPAY_ACCESS_TOKEN="tok en"\n'
        "COTPAY_ENVELOPE=plain\n"
        "COTPAY_PUBLIC_KEY_FILE=cotpay_public.pem\n"
        "COTPAY_PRIVATE_KEY_FILE=/abs/merchant_private.pem\n"
        "OTHER=ignored\n",
        encoding="utf-8",
    )
    assert run(*VERIFY, "--env-file", str(env)) == 0
    settings = recorder.settings[0]
    assert settings.base_url == "http://127.0.0.1:9"
    assert settings.app_id == "app-1"
    assert settings.access_token.get_secret_value() == "tok en"
    assert settings.public_key_file == env.parent / "cotpay_public.pem"
    assert settings.private_key_file == Path("/abs/merchant_private.pem")
    assert recorder.requests[0].headers["authorization"] == "tok en"
    assert run(*VERIFY, "--env-file", str(env), "--base-url", "http://other:1") == 0
    assert recorder.settings[1].base_url == "http://other:1"


def test_missing_env_file_or_bad_settings_exit_2(
    recorder: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*VERIFY, "--env-file", str(tmp_path / "nope.env")) == 2
    bad = tmp_path / "bad.env"
    bad.write_text("COTPAY_ENVELOPE=rot13\n")
    assert run(*VERIFY, "--env-file", str(bad)) == 2
    assert "envelope" in capsys.readouterr().err


def test_encrypted_without_keys_exits_2(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COTPAY_ENVELOPE", "encrypted")
    monkeypatch.delenv("COTPAY_PUBLIC_KEY_FILE", raising=False)
    assert run(*VERIFY) == 2
    assert "COTPAY_PUBLIC_KEY_FILE" in capsys.readouterr().err


def test_endpoints_also_answer_to_the_hyphenated_names_a_reader_guesses() -> None:
    args = parser().parse_args(["api", "customer-id", "--partner-id", "S1", "--buyer-id", "B1"])
    assert args.api_endpoint.name == "customerID"
    assert cli.hyphenated("customerID") == "customer-id"
    assert cli.hyphenated("verify-order") == "verify-order"


def test_json_flag_is_accepted_and_errors_become_json(
    recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*VERIFY, "--json") == 0
    assert json.loads(capsys.readouterr().out)["code"] == 10100
    assert run("payment", "--json") == 2  # idOrder missing
    error = json.loads(capsys.readouterr().out)
    assert error["error"] == "invalid_request" and "--id-order" in error["message"]


def test_without_credentials_the_error_names_the_sandbox_env_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("ENVELOPE", "APP_ID", "ACCESS_TOKEN", "PUBLIC_KEY_FILE", "PRIVATE_KEY_FILE"):
        monkeypatch.delenv(f"COTPAY_{name}", raising=False)
    monkeypatch.setattr(cli, "configure_logging", lambda: None)
    assert run(*VERIFY) == 2
    err = capsys.readouterr().err
    assert "--env-file .data/keys/credentials.env" in err
    assert "COTPAY_APP_ID" in err and "COTPAY_PUBLIC_KEY_FILE" in err
    assert run(*VERIFY, "--json") == 2
    assert json.loads(capsys.readouterr().out)["error"] == "config_error"
