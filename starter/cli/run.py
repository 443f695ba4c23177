"""``cotpay-escrow run``: the whole embedded stack on this machine, wired with no configuration.

Starts, in order, the Temporal dev server (SQLite file in the data dir, UI), the Cotpay sandbox
(keys in ``<data-dir>/keys``), the worker and the HTTP gateway, each as a child process (the
stack of ``starter/stack/local.py``, wired as ``starter/stack/plan.py`` says); prints where
everything is; stops all of it on Ctrl-C / SIGTERM, or when any part dies (exit code 1).
Payload encryption and the codec server for the web UI: docs/running.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import structlog

from cotpay.logs import configure_logging
from starter.cli.output import command_name, ui_list_url
from starter.stack import Stack, StackPlan, busy_ports, local_stack, plan_stack, prepare
from store.db import safe_url
from workflows.models import PayoutRule

log = structlog.get_logger(__name__)

DEFAULT_API_KEY = "dev-api-key"
DEFAULT_TEMPORAL = "127.0.0.1:7233"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the whole stack here: Temporal dev server, sandbox, worker, gateway",
        description=(
            "Run the Temporal dev server, the Cotpay sandbox, the worker and the HTTP gateway, "
            "wired to each other. Ctrl-C stops everything."
        ),
    )
    parser.add_argument("--data-dir", type=Path, default=Path(".data"), help="default: .data")
    parser.add_argument(
        "--payout-rule",
        choices=[r.value for r in PayoutRule],
        default=None,
        help="payout rule of the sandbox and the worker "
        "(default: ESCROW_PAYOUT_RULE or t1-1600; 'immediate' for demos)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address every part binds to")
    parser.add_argument("--temporal-port", type=int, default=7233)
    parser.add_argument("--ui-port", type=int, default=8233)
    parser.add_argument("--headless", action="store_true", help="no Temporal web UI")
    parser.add_argument("--sandbox-port", type=int, default=8090)
    parser.add_argument("--gateway-port", type=int, default=8000)
    parser.add_argument(
        "--codec-port", type=int, default=8081, help="codec server for the web UI (default 8081)"
    )
    parser.add_argument(
        "--plain-payloads",
        action="store_true",
        help="do not encrypt payloads (default with the local dev server: a key ring generated "
        "once into <data-dir>/codec.keys)",
    )
    parser.set_defaults(func=_main)


def plan_from(args: argparse.Namespace, environ: dict[str, str]) -> StackPlan:
    return plan_stack(
        environ,
        data_dir=args.data_dir,
        host=args.host,
        payout_rule=args.payout_rule,
        temporal_port=args.temporal_port,
        ui_port=None if args.headless else args.ui_port,
        sandbox_port=args.sandbox_port,
        gateway_port=args.gateway_port,
        codec_port=args.codec_port,
        plain_payloads=args.plain_payloads,
    )


def banner(plan: StackPlan) -> str:
    keys = plan.env.get("ESCROW_API_KEYS", DEFAULT_API_KEY)
    api_key = keys if keys == DEFAULT_API_KEY else "(first of ESCROW_API_KEYS)"
    lines = ["", "cotpay-escrow is running. Ctrl-C stops everything.", ""]
    if plan.external_temporal is None:
        if plan.ui_port is not None:
            lines.append(f"  Temporal UI      http://{plan.host}:{plan.ui_port}")
        lines.append(f"  Temporal         {plan.temporal_address} (namespace {plan.namespace})")
    else:
        lines.append(f"  Temporal         {plan.temporal_address} (existing, not started here)")
    lines.append(
        f"  HTTP gateway     {plan.gateway_url}  (OpenAPI: {plan.gateway_url}/openapi.json)"
    )
    lines.append(f"  API key          {api_key}")
    lines.append(f"  Metrics          {plan.gateway_url}/metrics")
    if plan.external_cotpay is None:
        lines.append(f"  Cotpay sandbox   {plan.sandbox_url}  (payout rule {plan.payout_rule})")
    else:
        lines.append(f"  Cotpay           {plan.external_cotpay} (no sandbox started)")
    cli = command_name()
    if plan.external_temporal is None and plan.ui_port is not None:
        stuck = ui_list_url(
            'EscrowStatus = "NEEDS_ATTENTION"',
            ui=f"http://{plan.host}:{plan.ui_port}",
            namespace=plan.namespace,
        )
        lines.append(f"  Stuck orders     {stuck}")
        lines.append(f"                   or: {cli} ops list --status NEEDS_ATTENTION")
    lines.append(f"  Data             {plan.data_dir}")
    lines.append(f"  Order store      {safe_url(plan.env['ESCROW_DATABASE_URL'])}")
    if plan.codec_server:
        lines.append(f"  Codec server     {plan.codec_url}  (the UI decrypts payloads through it)")
    if plan.encrypted:
        ring = plan.env.get("ESCROW_CODEC_KEYS_FILE")
        lines.append(f"  Payloads         encrypted, key ring {ring or 'from ESCROW_CODEC_KEYS'}")
    elif plan.external_temporal is None:
        lines.append("  Payloads         not encrypted (--plain-payloads)")
    exports = cli_environment(plan)
    if exports:
        assignments = " ".join(f"{key}={value}" for key, value in exports.items())
        lines.append(f"  Other terminals  export {assignments}")
        lines.append(f"                   (then `{cli} order` and `{cli} ops` use this stack)")
    demo = f"{cli} demo"
    if plan.gateway_port != 8000:
        demo += f" --gateway-url {plan.gateway_url}"
    if plan.external_cotpay is None and plan.sandbox_port != 8090:
        demo += f" --sandbox-url {plan.sandbox_url}"
    if plan.external_temporal is None and plan.ui_port not in (None, 8233):
        demo += f" --ui-url http://{plan.host}:{plan.ui_port}"
    lines += ["", f"Try:  {demo}", ""]
    return "\n".join(lines)


def cli_environment(plan: StackPlan) -> dict[str, str]:
    """What ``order`` and ``ops`` in another terminal need to act like this stack's gateway:
    the generated payload key ring, the payout rule of new orders when it is not the default,
    and Temporal's address and namespace when they are not the defaults (docs/running.md).

    The CLI reads none of this from the data dir by itself, so that a CLI pointed at a
    production cluster never picks up a development key or rule."""
    env: dict[str, str] = {}
    if plan.codec_keys_file is not None:
        env["ESCROW_CODEC_KEYS_FILE"] = str(plan.codec_keys_file)
    if plan.payout_rule != PayoutRule.T1_1600.value:
        env["ESCROW_PAYOUT_RULE"] = plan.payout_rule
    if plan.external_temporal is None and plan.temporal_address != DEFAULT_TEMPORAL:
        env["TEMPORAL_ADDRESS"] = plan.temporal_address
    if plan.namespace != "default":
        env["TEMPORAL_NAMESPACE"] = plan.namespace
    return env


async def _start(plan: StackPlan, stack: Stack) -> None:
    prepare(plan)
    await stack.start()


async def run_stack(plan: StackPlan) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stack = local_stack(plan)
    try:
        starting = asyncio.create_task(_start(plan, stack))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            return 0
        if (error := starting.exception()) is not None:
            log.error("stack_start_failed", error=str(error))
            return 1
        print(banner(plan), flush=True)
        return await stack.supervise(stop)
    finally:
        await stack.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _main(args: argparse.Namespace) -> int:
    configure_logging(os.environ.get("ESCROW_LOG_FORMAT", "console"))
    plan = plan_from(args, dict(os.environ))
    busy = busy_ports(plan)
    if busy:
        print(
            f"cannot start: {', '.join(busy)} already in use "
            "(another `cotpay-escrow run`? stop it, or pick other ports with the --*-port flags)",
            file=sys.stderr,
        )
        return 1
    return asyncio.run(run_stack(plan))
