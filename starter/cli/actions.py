"""Running one ``EscrowClient`` action from a command: connect, act, print, map errors.

Connects with the Temporal CLI's ``TEMPORAL_*`` configuration (``runtime/temporal.py``).
Exit codes: 0 done, 1 refused or failed (the reason on stderr, or as JSON), 2 usage
(docs/cli.md).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from runtime.codec import CodecError
from runtime.temporal import TemporalConfig, TemporalConfigError, connect, release_client
from starter.cli.output import emit, fail
from starter.client import EscrowClient, EscrowClientError

_T = TypeVar("_T")


async def with_client(action: Callable[[EscrowClient], Awaitable[_T]]) -> _T:
    """Run ``action`` on a client connected from the environment, then release it."""
    try:
        config = TemporalConfig.from_env()
        client = await connect(config)
        return await action(EscrowClient(client, task_queue=config.task_queue))
    finally:
        await release_client()


def run_action(
    args: argparse.Namespace,
    action: Callable[[EscrowClient], Awaitable[_T]],
    render: Callable[[_T], str],
    to_json: Callable[[_T], Any],
    exit_code: Callable[[_T], int] = lambda _result: 0,
) -> int:
    """Run ``action`` against Temporal and print its result; map client errors to exit 1."""
    try:
        result = asyncio.run(with_client(action))
    except EscrowClientError as exc:
        return fail(args, exc.code, exc.message)
    except (CodecError, TemporalConfigError) as exc:
        return fail(args, "config_error", str(exc))
    except RuntimeError as exc:
        if "connect" not in str(exc).lower():
            raise
        return fail(args, "temporal_unavailable", f"cannot reach Temporal: {exc}")
    emit(args, render(result), to_json(result))
    return exit_code(result)
