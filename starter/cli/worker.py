"""``cotpay-escrow worker``: run the Temporal worker (settings from the environment).

The only module of the service that imports ``worker.py`` (docs/architecture.md).
"""

from __future__ import annotations

import argparse
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from worker import main

    return main()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run the Temporal worker of the escrow orders",
        description="Run the escrow worker on the cotpay-escrow task queue until SIGINT/SIGTERM."
        " Configuration: TEMPORAL_*, COTPAY_*, ESCROW_* environment variables.",
    )
    parser.set_defaults(func=_run)
