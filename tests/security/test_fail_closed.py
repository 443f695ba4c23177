"""Fail closed (docs/security.md): in production mode the gateway, the worker and the codec
server refuse every development default, placeholder and empty secret, and name it; ``make run``
(loopback, development) keeps working with no configuration."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from runtime.safety import (
    DEV_API_KEY,
    DEV_IPN_SECRET,
    UnsafeConfiguration,
    check_codec_server,
    check_gateway,
    check_worker,
    is_loopback,
    production_reasons,
)
from runtime.settings import EscrowSettings
from starter.cli import run as run_cmd
from starter.stack.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
GOOD_IPN = "i" * 40
GOOD_KEY = "k" * 32
GOOD_TOKEN = "t" * 32
COTPAY_TOKEN = "cotpay-access-token"


def settings(**values: object) -> EscrowSettings:
    base: dict[str, object] = {
        "env": "production",
        "ipn_secret": GOOD_IPN,
        "api_keys": GOOD_KEY,
        "public_url": "https://escrow.example.com",
    }
    base.update(values)
    return EscrowSettings.model_validate(base)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("escrow.example.com", False),
        ("", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_what_turns_production_mode_on() -> None:
    assert production_reasons("development", bind_hosts=["127.0.0.1"]) == []
    assert production_reasons("development", public_url="http://127.0.0.1:8000") == []
    assert production_reasons("production") == ["ESCROW_ENV=production"]
    assert production_reasons("development", bind_hosts=["0.0.0.0"]) == ["binds to 0.0.0.0"]
    reasons = production_reasons("development", public_url="https://escrow.example.com/")
    assert reasons == ["ESCROW_PUBLIC_URL is on escrow.example.com"]


def test_production_settings_with_real_secrets_start() -> None:
    check_gateway(settings(), "0.0.0.0")
    check_worker(settings(), COTPAY_TOKEN)
    check_codec_server("production", "0.0.0.0", GOOD_TOKEN)


# Each development default or empty secret, and the variable the refusal must name.
GATEWAY_REFUSALS = [
    ({"ipn_secret": DEV_IPN_SECRET}, "ESCROW_IPN_SECRET is the development default"),
    ({"ipn_secret": ""}, "ESCROW_IPN_SECRET is empty"),
    ({"ipn_secret": "change-me-long-random-ipn-secret-xx"}, "ESCROW_IPN_SECRET is a placeholder"),
    ({"ipn_secret": "x" * 31}, "ESCROW_IPN_SECRET is shorter than 32 bytes"),
    ({"api_keys": DEV_API_KEY}, "ESCROW_API_KEYS key 1 is the development default"),
    ({"api_keys": f"{GOOD_KEY},{DEV_API_KEY}:viewer"}, "ESCROW_API_KEYS key 2 is the development"),
    ({"api_keys": "change-me-api-key-0123456789"}, "ESCROW_API_KEYS key 1 is a placeholder"),
    ({"api_keys": "short"}, "ESCROW_API_KEYS key 1 is shorter than 24 characters"),
]


@pytest.mark.parametrize(("values", "named"), GATEWAY_REFUSALS)
@pytest.mark.parametrize(
    ("mode", "host", "public_url"),
    [
        ("production", "127.0.0.1", "http://127.0.0.1:8000"),
        ("development", "0.0.0.0", "http://127.0.0.1:8000"),
        ("development", "127.0.0.1", "https://escrow.example.com"),
    ],
)
def test_gateway_refuses_each_development_default(
    values: dict[str, object], named: str, mode: str, host: str, public_url: str
) -> None:
    with pytest.raises(UnsafeConfiguration) as refused:
        check_gateway(settings(env=mode, public_url=public_url, **values), host)
    assert named in str(refused.value)
    assert str(refused.value).startswith("gateway refuses to start in production mode")


def test_the_refusal_never_shows_the_secret() -> None:
    with pytest.raises(UnsafeConfiguration) as refused:
        check_gateway(settings(ipn_secret="a-secret-that-is-too-short"), "127.0.0.1")
    assert "a-secret-that-is-too-short" not in str(refused.value)


def test_empty_bootstrap_keys_are_allowed_in_production() -> None:
    check_gateway(settings(api_keys=""), "0.0.0.0")


@pytest.mark.parametrize(
    ("values", "token", "named"),
    [
        ({"ipn_secret": DEV_IPN_SECRET}, COTPAY_TOKEN, "ESCROW_IPN_SECRET is the development"),
        ({"ipn_secret": "x" * 12}, COTPAY_TOKEN, "ESCROW_IPN_SECRET is shorter than 32 bytes"),
        ({}, "", "COTPAY_ACCESS_TOKEN is empty"),
        ({}, "change-me", "COTPAY_ACCESS_TOKEN is a placeholder"),
    ],
)
def test_worker_refuses_each_development_default(
    values: dict[str, object], token: str, named: str
) -> None:
    with pytest.raises(UnsafeConfiguration, match=named):
        check_worker(settings(**values), token)


@pytest.mark.parametrize(
    ("token", "named"),
    [
        (None, "ESCROW_CODEC_TOKEN is empty"),
        ("", "ESCROW_CODEC_TOKEN is empty"),
        ("change-me-codec-token-0123456789", "ESCROW_CODEC_TOKEN is a placeholder"),
        ("tok", "ESCROW_CODEC_TOKEN is shorter than 24 characters"),
    ],
)
def test_codec_server_refuses_each_development_default(token: str | None, named: str) -> None:
    for mode, host in (("production", "127.0.0.1"), ("development", "0.0.0.0")):
        with pytest.raises(UnsafeConfiguration, match=named):
            check_codec_server(mode, host, token)


def test_development_defaults_are_fine_on_loopback() -> None:
    dev = EscrowSettings()
    assert dev.ipn_secret.get_secret_value() == DEV_IPN_SECRET
    check_gateway(dev, "127.0.0.1")
    check_worker(dev, "")
    check_codec_server("development", "127.0.0.1", "tok")


def test_make_run_plan_passes_the_checks(tmp_path: Path) -> None:
    """``make run`` with no configuration: every part starts in development mode."""
    parser = argparse.ArgumentParser()
    run_cmd.register(parser.add_subparsers())
    plan = run_cmd.plan_from(parser.parse_args(["run", "--data-dir", str(tmp_path)]), {})
    escrow = EscrowSettings.model_validate(
        {
            k.removeprefix("ESCROW_").lower(): v
            for k, v in plan.env.items()
            if k.startswith("ESCROW_")
        }
    )
    assert escrow.ipn_secret == SecretStr(DEV_IPN_SECRET)
    check_gateway(escrow, plan.host)
    check_worker(escrow, "")
    check_codec_server(escrow.env, plan.host, plan.codec_token)
    assert escrow.docs is True  # a loopback development stack serves /docs


# --- the real entry points, as processes ------------------------------------------------------


def _env(**values: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ESCROW_", "COTPAY_", "TEMPORAL_"))
    }
    # Nothing listens there: a process that did not refuse would wait for Temporal instead.
    env["TEMPORAL_ADDRESS"] = f"127.0.0.1:{free_port()}"
    env.update(values)
    return env


async def _exit_of(*argv: str, env: dict[str, str], within: float = 30) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), within)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{argv} did not refuse within {within}s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode()


CLI = (sys.executable, "-m", "starter.cli")


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({}, "ESCROW_IPN_SECRET is the development default"),
        ({"ESCROW_IPN_SECRET": GOOD_IPN}, "ESCROW_API_KEYS key 1 is the development default"),
        ({"ESCROW_IPN_SECRET": "", "ESCROW_API_KEYS": GOOD_KEY}, "ESCROW_IPN_SECRET is empty"),
    ],
)
async def test_gateway_process_refuses_in_production(values: dict[str, str], named: str) -> None:
    env = _env(ESCROW_ENV="production", **values)
    port = str(free_port())
    code, out = await _exit_of(*CLI, "gateway", "--port", port, "--connect-timeout", "1", env=env)
    assert code == 1, out
    assert named in out
    assert "gateway.unsafe_configuration" in out


@pytest.mark.timeout(120)
async def test_worker_process_refuses_in_production() -> None:
    env = _env(ESCROW_ENV="production", COTPAY_ACCESS_TOKEN=COTPAY_TOKEN)
    code, out = await _exit_of(sys.executable, "worker.py", env=env)
    assert code == 1, out
    assert "ESCROW_IPN_SECRET is the development default" in out
    env = _env(ESCROW_PUBLIC_URL="https://escrow.example.com", ESCROW_IPN_SECRET=GOOD_IPN)
    code, out = await _exit_of(*CLI, "worker", env=env)
    assert code == 1, out
    assert "COTPAY_ACCESS_TOKEN is empty" in out
    assert "ESCROW_PUBLIC_URL is on escrow.example.com" in out


@pytest.mark.timeout(120)
async def test_codec_server_process_refuses_in_production() -> None:
    env = _env(
        ESCROW_ENV="production",
        ESCROW_CODEC_KEYS="k1:" + "A" * 43 + "=",
        ESCROW_CODEC_TOKEN="tok",
    )
    port = str(free_port())
    code, out = await _exit_of(*CLI, "codec-server", "--port", port, env=env)
    assert code == 2, out
    assert "ESCROW_CODEC_TOKEN is shorter than 24 characters" in out
