"""Sampling profiles of the stack's Python processes with py-spy (``--profile DIR``).

During the engine section's escrow batch, ``py-spy record --format raw`` samples the worker, the
gateway and the sandbox (``pip install -e '.[profile]'``). Each profile is written to
``DIR/<part>.txt`` (collapsed stacks, one line per stack with its count; flamegraph tools read
it) and summed up in the JSON: the share of samples per top-level area (own code by package,
the Temporal SDK, pydantic, logging, HTTP, crypto, asyncio) and the functions with the most
samples of their own (docs/benchmarks.md, "Where the time goes").
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

AREAS: tuple[tuple[str, str], ...] = (
    ("cotpay/envelope.py", "envelope crypto (cotpay/envelope.py)"),
    ("cryptography/", "envelope crypto (cotpay/envelope.py)"),
    ("structlog/", "logging"),
    ("logging/", "logging"),
    ("cotpay/logs.py", "logging"),
    ("temporalio/worker/workflow_sandbox", "temporal SDK: workflow sandbox"),
    ("temporalio/", "temporal SDK"),
    ("pydantic", "pydantic"),
    ("uvicorn/", "HTTP server (uvicorn, h11)"),
    ("h11/", "HTTP server (uvicorn, h11)"),
    ("starlette/", "web framework (starlette, fastapi)"),
    ("fastapi/", "web framework (starlette, fastapi)"),
    ("httpx/", "HTTP client (httpx)"),
    ("httpcore/", "HTTP client (httpx)"),
    ("sqlalchemy/", "order store (sqlalchemy, aiosqlite)"),
    ("aiosqlite/", "order store (sqlalchemy, aiosqlite)"),
    ("sqlite3/", "order store (sqlalchemy, aiosqlite)"),
    ("asyncio/", "asyncio"),
    ("json/", "json"),
)
_OWN = ("workflows/", "activities/", "starter/", "sandbox/", "store/", "runtime/", "cotpay/")


def available() -> bool:
    return _binary() is not None


def _binary() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


class Recording:
    """py-spy attached to some processes until ``stop``."""

    def __init__(self, out_dir: Path, pids: dict[str, int], rate: int = 50) -> None:
        self.out_dir = out_dir
        self.pids = pids
        self.rate = rate
        self._procs: dict[str, asyncio.subprocess.Process] = {}

    async def start(self) -> None:
        binary = _binary()
        if binary is None:
            raise RuntimeError("py-spy is not installed: pip install -e '.[profile]'")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            self._procs[name] = await asyncio.create_subprocess_exec(
                binary,
                "record",
                "--format",
                "raw",
                "--rate",
                str(self.rate),
                "--nonblocking",
                "--pid",
                str(pid),
                "-o",
                str(self.out_dir / f"{name}.txt"),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )

    async def stop(self) -> dict[str, Any]:
        for proc in self._procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        for proc in self._procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        return {name: summarize(self.out_dir / f"{name}.txt") for name in self._procs}


def _area(frame: str) -> str:
    for needle, area in AREAS:
        if needle in frame:
            return area
    for package in _OWN:
        if f"({package}" in frame or f"/{package}" in frame:
            return f"own code: {package.rstrip('/')}"
    return "other"


def summarize(path: Path, top: int = 12) -> dict[str, Any]:
    """Shares of samples by area: of the innermost frame (``by_area``), of any frame
    (``inclusive_by_area``), and the functions with most samples of their own."""
    if not path.is_file():
        return {"error": f"no profile at {path}"}
    areas: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaf = frames[-1]
        own[leaf] += count
        areas[_area(leaf)] += count
        for area in {_area(frame) for frame in frames}:
            inclusive[area] += count
    if total == 0:
        return {"samples": 0}
    return {
        "samples": total,
        "by_area": {k: round(v / total, 3) for k, v in areas.most_common()},
        "inclusive_by_area": {k: round(v / total, 3) for k, v in inclusive.most_common()},
        "top_functions": {k: round(v / total, 3) for k, v in own.most_common(top)},
    }
