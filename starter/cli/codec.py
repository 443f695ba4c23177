"""``cotpay-escrow codec-server``: serve the payload codec to the Temporal UI and CLI.

The app is ``runtime/codec_server.py``; keys and token from ``ESCROW_CODEC_*`` (docs/deployment.md).
"""

from __future__ import annotations

import argparse
from typing import Any

import structlog
import uvicorn

from cotpay.logs import configure_logging
from runtime.codec import CodecError, CodecSettings, EncryptionCodec, generate_key
from runtime.codec_server import create_codec_app
from runtime.settings import EscrowSettings

log = structlog.get_logger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "codec-server",
        help="serve /encode and /decode for the Temporal UI (needs ESCROW_CODEC_KEYS and _TOKEN)",
    )
    parser.add_argument("--host", default=None, help="bind address (default ESCROW_CODEC_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (default 8081)")
    parser.add_argument(
        "--generate-key",
        metavar="KEY_ID",
        default=None,
        help="print a new '<KEY_ID>:<base64 key>' ring entry and exit",
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.generate_key is not None:
        print(f"{args.generate_key}:{generate_key()}")
        return 0
    settings = CodecSettings()
    configure_logging(EscrowSettings().log_format)
    try:
        ring = settings.key_ring()
    except (CodecError, OSError) as exc:
        log.error("codec_keys_invalid", error=str(exc))
        return 2
    if ring is None:
        log.error("codec_keys_missing", hint="set ESCROW_CODEC_KEYS or ESCROW_CODEC_KEYS_FILE")
        return 2
    if settings.token is None or not settings.token.get_secret_value():
        log.error("codec_token_missing", hint="set ESCROW_CODEC_TOKEN")
        return 2
    app = create_codec_app(
        EncryptionCodec(ring), settings.cors_origin, settings.token.get_secret_value()
    )
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    log.info(
        "codec_server_starting",
        host=host,
        port=port,
        cors_origin=settings.cors_origin,
        current_key_id=ring.current,
        known_key_ids=sorted(ring.keys),
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0
