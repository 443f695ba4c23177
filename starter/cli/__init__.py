"""The ``cotpay-escrow`` command line (docs/cli.md).

Each command group lives in its own module and exposes ``register(subparsers)``; a command sets
``func`` (taking the parsed namespace, returning an exit code) on its parser. Command modules
share ``output.py`` (printing), ``actions.py`` (one client action against Temporal) and
``store_actions.py`` (one action on the order store) and never import each other. The
``sandbox`` and ``api`` groups belong to the sandbox and to the Cotpay protocol package
(``sandbox/cli.py``, ``cotpay/cli.py``).
"""

from __future__ import annotations

import argparse
import importlib
import os
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
    "starter.cli.orders",
    "starter.cli.db",
    "starter.cli.reconcile",
    "starter.cli.webhooks",
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


# The exit code after the reader of our output went away (``... | head``), as for SIGPIPE.
EXIT_BROKEN_PIPE = 128 + 13


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help(sys.stderr)
            return 2
        code: int = func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # ``cotpay-escrow order status X | head``: the reader has gone, stop quietly; point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
