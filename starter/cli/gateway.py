"""``cotpay-escrow gateway [--host H] [--port P]``: the HTTP gateway (docs/http-api.md).

Settings: ``TEMPORAL_*``, ``ESCROW_*`` (API keys, IPN secret, body cap, host and port defaults)
and ``COTPAY_PRIVATE_KEY_FILE`` (opens sealed IPNs). Waits up to ``--connect-timeout`` seconds
for Temporal at start-up, then serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio

import structlog
from temporalio.client import Client
from temporalio.runtime import Runtime

from cotpay.logs import configure_logging
from cotpay.settings import CotpaySettings
from runtime.codec import CodecError
from runtime.metrics import MetricsSettings, temporal_runtime
from runtime.settings import EscrowSettings
from runtime.temporal import TemporalConfig, TemporalConfigError, connect, release_client
from runtime.tracing import configure_tracing, shutdown_tracing
from starter.gateway.server import serve_gateway
from store.api import OrderStore
from store.errors import StoreError

log = structlog.get_logger("cotpay_escrow.gateway")

RETRY_DELAY_S = 1.0


async def _connect(settings: TemporalConfig, timeout_s: float) -> Client:
    """Connect with tracing interceptors (when OTLP is configured) and SDK metrics."""
    interceptors = configure_tracing("cotpay-escrow-gateway")
    runtime: Runtime | None = temporal_runtime(MetricsSettings().sdk_metrics_address)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    attempt = 0
    while True:
        attempt += 1
        try:
            return await connect(settings, interceptors=interceptors, runtime=runtime)
        except RuntimeError as exc:
            if loop.time() + RETRY_DELAY_S > deadline:
                raise
            log.warning(
                "gateway.temporal_unreachable",
                address=settings.address,
                attempt=attempt,
                error=str(exc)[:200],
            )
            await asyncio.sleep(RETRY_DELAY_S)


async def _serve(args: argparse.Namespace, escrow: EscrowSettings) -> None:
    try:
        await _serve_with_client(args, escrow)
    finally:
        await release_client()
        shutdown_tracing()


async def _serve_with_client(args: argparse.Namespace, escrow: EscrowSettings) -> None:
    temporal = TemporalConfig.from_env()
    client = await _connect(temporal, args.connect_timeout)
    host = args.host or escrow.gateway_host
    port = args.port if args.port is not None else escrow.gateway_port
    log.info("gateway.start", host=host, port=port, temporal=temporal.address)
    async with OrderStore.open() as store:
        await store.ensure_schema()
        await serve_gateway(
            client,
            escrow,
            CotpaySettings(),
            host=host,
            port=port,
            task_queue=temporal.task_queue,
            store=store,
        )


def _run(args: argparse.Namespace) -> int:
    escrow = EscrowSettings()
    configure_logging(escrow.log_format)
    try:
        asyncio.run(_serve(args, escrow))
    except (RuntimeError, CodecError, TemporalConfigError, StoreError) as exc:
        log.error("gateway.failed", error=str(exc)[:300])
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "gateway",
        help="run the HTTP gateway (REST API for shops, IPN intake for Cotpay)",
        description="Serve the REST API and the IPN endpoint (default 127.0.0.1:8000).",
    )
    parser.add_argument("--host", default=None, help="default ESCROW_GATEWAY_HOST (127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="default ESCROW_GATEWAY_PORT (8000)")
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for Temporal at start-up (default 60)",
    )
    parser.set_defaults(func=_run)
