"""The ``cotpay-escrow`` command line (docs/cli.md).

Each command group lives in its own module and exposes ``register(subparsers)``; a command sets
``func`` (taking the parsed namespace, returning an exit code) on its parser. Command modules
share ``output.py`` (printing) and ``actions.py`` (one client action against Temporal) and never
import each other. The ``sandbox`` and ``api`` groups belong to the sandbox and to the Cotpay
protocol package (``sandbox/cli.py``, ``cotpay/cli.py``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that register commands, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "sandbox.cli",
    "cotpay.cli",
    "starter.cli.codec",
    "starter.cli.run",
    "starter.cli.demo",
    "starter.cli.gateway",
    "starter.cli.order",
    "starter.cli.ops",
    "starter.cli.keys",
    "starter.cli.merchants",
    "starter.cli.worker",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cotpay-escrow",
        description="Durable escrow orders on Cotpay, orchestrated by Temporal.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    code: int = func(args)
    return code
