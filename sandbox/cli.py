"""``cotpay-escrow sandbox``: run the local Cotpay sandbox until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import tempfile
from pathlib import Path
from typing import Any

import structlog

from cotpay.logs import configure_logging
from cotpay.payout_window import PayoutRule
from sandbox.faults import IpnPolicy
from sandbox.keys import ensure_keys
from sandbox.state import EnvelopeMode, SandboxState
from sandbox.testing import serve_state


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sandbox",
        help="run the local Cotpay sandbox (Cotpay's wire protocol, settable clock, faults)",
        description="Run the local Cotpay sandbox. Admin API under /sandbox/ (docs/sandbox.md).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--keys-dir",
        type=Path,
        default=None,
        help="where keys and credentials.env live (created on first start; default: a temp dir)",
    )
    parser.add_argument(
        "--payout-rule", choices=[r.value for r in PayoutRule], default=PayoutRule.T1_1600.value
    )
    parser.add_argument(
        "--db", type=Path, default=None, help="SQLite file to persist state (default: memory)"
    )
    parser.add_argument(
        "--public-url",
        default=None,
        help="base URL clients use (payment URLs, credentials.env); default: the bound address",
    )
    parser.add_argument("--envelope", choices=["encrypted", "plain"], default="encrypted")
    parser.add_argument("--ipn-base-delay", type=float, default=0.5, help="seconds")
    parser.add_argument("--ipn-max-delay", type=float, default=60.0, help="seconds")
    parser.add_argument("--ipn-max-attempts", type=int, default=30)
    parser.add_argument("--ipn-max-age", type=float, default=24 * 3600.0, help="seconds")
    parser.add_argument("--log-format", choices=["console", "json"], default="console")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_format)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


async def serve(args: argparse.Namespace) -> None:
    log = structlog.get_logger("sandbox")
    keys_dir: Path = args.keys_dir or Path(tempfile.mkdtemp(prefix="cotpay-sandbox-"))
    envelope: EnvelopeMode = args.envelope
    state = SandboxState(
        ensure_keys(keys_dir),
        payout_rule=args.payout_rule,
        db=args.db,
        envelope_mode=envelope,
        ipn_policy=IpnPolicy(
            base_delay=args.ipn_base_delay,
            max_delay=args.ipn_max_delay,
            max_attempts=args.ipn_max_attempts,
            max_age=args.ipn_max_age,
        ),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve_state(state, host=args.host, port=args.port) as bound_url:
        if args.public_url:
            state.base_url = args.public_url
        base_url = state.base_url
        credentials = state.write_credentials()
        log.info(
            "sandbox.started",
            base_url=base_url,
            payout_rule=state.payout_rule.value,
            envelope=envelope,
            db=str(args.db) if args.db else None,
            credentials_file=str(credentials),
        )
        print(f"Cotpay sandbox on {bound_url}", flush=True)
        print(f"credentials: {credentials}  (source it or copy the COTPAY_* lines)", flush=True)
        await stop.wait()
        log.info("sandbox.stopping")
