"""The README's curl walk-throughs (English and Vietnamese), pasted as they are, twice each.

Each block is taken verbatim from README.md (the ```sh block after the marker
``<!-- walkthrough:en`` or ``<!-- walkthrough:vi``) and run with ``bash`` against a real
``cotpay-escrow run`` stack with the default payout rule, as ``make run`` starts it. The one
change the test makes: **the port numbers**. The README talks to the default ports (gateway
8000, sandbox 8090); the stack here listens on free ports, so ``127.0.0.1:8000`` and
``127.0.0.1:8090`` in the block are replaced by those. For the same reason the script's
environment carries ``TEMPORAL_ADDRESS`` (the README's CLI step relies on the default
``127.0.0.1:7233``). The stack runs in a temporary directory that looks like the project's: its
data dir is ``.data`` and ``.venv`` links to this interpreter's virtual environment, so the
block's ``$PWD/.data/codec.keys`` and ``.venv/bin/cotpay-escrow`` are what they are in a clone.

Each block runs twice on the same stack: both runs end ``PAID_OUT`` with exactly one payout of
their own order, and the output matches the README's expected output (numbers and times aside).
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from starter.stack.processes import ChildProcess, free_port

from .run_process import CLI, clean_env, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DEFAULT_PORTS = {"gateway": 8000, "sandbox": 8090}


def block(marker: str, language: str) -> str:
    """The fenced block of ``language`` that follows ``<!-- <marker>`` in the README."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"<!-- {marker}")
    fence = text.index(f"```{language}\n", start) + len(f"```{language}\n")
    return text[fence : text.index("```\n", fence)]


def shape(output: str) -> list[str]:
    """Lines with every run of digits as ``N``: refs, ids and times vary, the rest does not."""
    return [re.sub(r"\d+", "N", line.rstrip()) for line in output.strip().splitlines()]


@dataclass(frozen=True)
class Stack:
    cwd: Path
    gateway: int
    sandbox: int
    temporal: int

    @property
    def env(self) -> dict[str, str]:
        return {**clean_env(), "TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal}"}

    def localize(self, script: str) -> str:
        """The block with the stack's ports instead of the README's default ones (only that)."""
        for name, default in DEFAULT_PORTS.items():
            assert f"127.0.0.1:{default}" in script, f"the block no longer uses the {name} port"
            script = script.replace(f"127.0.0.1:{default}", f"127.0.0.1:{getattr(self, name)}")
        return script


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """`cotpay-escrow run` with the default rule, in a directory shaped like a clone."""
    cwd = tmp_path_factory.mktemp("clone")
    (cwd / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    here = Stack(cwd, gateway=free_port(), sandbox=free_port(), temporal=free_port())
    run = ChildProcess(
        "run",
        [
            *CLI,
            "run",
            "--headless",
            "--temporal-port",
            str(here.temporal),
            "--sandbox-port",
            str(here.sandbox),
            "--gateway-port",
            str(here.gateway),
        ],
        env=here.env,
        cwd=cwd,
        log_file=cwd / "run.log",
    )
    await run.start()
    try:
        await wait_ready(run, f"http://127.0.0.1:{here.gateway}", within=90)
        yield here
    finally:
        await run.stop(grace=30)


async def paste(stack: Stack, script: str) -> str:
    """Run the block as a user who pastes it: ``bash`` in the project directory."""
    (stack.cwd / "walkthrough.sh").write_text(stack.localize(script), encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        "bash",
        "walkthrough.sh",
        cwd=stack.cwd,
        env=stack.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=180)
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.parametrize("language", ["en", "vi"])
async def test_the_readme_walkthrough_works_when_pasted_twice(stack: Stack, language: str) -> None:
    script = block(f"walkthrough:{language} ", "sh")
    expected = shape(block(f"walkthrough:{language}:output", "text"))
    refs: list[str] = []
    for attempt in (1, 2):
        output = await paste(stack, script)
        lines = output.strip().splitlines()
        assert "PAID_OUT" in lines, f"run {attempt}:\n{output}"
        assert "1 payout" in lines, f"run {attempt}: not exactly one payout\n{output}"
        assert shape(output) == expected, f"run {attempt}: output differs from the README\n{output}"
        refs.append(lines[2].split()[0])
    assert refs[0] != refs[1], "each paste uses a new orderRef"
