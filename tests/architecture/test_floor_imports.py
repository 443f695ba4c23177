"""Import rules of the protocol floor and the state machine, read from the source (AST).

``cotpay/`` (the protocol and Cotpay's payout window) imports nothing else of the project; the
sandbox, a stand-in for Cotpay, imports only ``cotpay/``, so it never shares code with the
service it tests. The state machine and the message rules are plain code: no
``temporalio.workflow``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = {"cotpay", "sandbox", "workflows", "activities", "starter", "worker", "bench", "tests"}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def project_packages(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported(path)} & PROJECT


@pytest.mark.parametrize(
    ("package", "allowed"), [("cotpay", {"cotpay"}), ("sandbox", {"cotpay", "sandbox"})]
)
def test_the_protocol_floor_and_the_sandbox_import_no_service_code(
    package: str, allowed: set[str]
) -> None:
    for path in sorted((ROOT / package).glob("*.py")):
        assert project_packages(path) <= allowed, path.name


@pytest.mark.parametrize(
    "module", ["state_machine", "rules", "calls", "models", "summary", "reconcile_checks"]
)
def test_the_state_machine_is_plain_code(module: str) -> None:
    names = imported(ROOT / "workflows" / f"{module}.py")
    assert not {n for n in names if n.startswith("temporalio.workflow")}, module
    assert not {n.split(".")[0] for n in names} & {"starter", "sandbox", "httpx", "worker"}
