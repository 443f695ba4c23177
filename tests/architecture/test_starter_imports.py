"""Import rules of the runtime and starter side (docs/architecture.md), read from the AST.

``runtime`` is below ``starter`` and ``worker.py``; ``worker.py`` imports no ``starter`` module
and only the ``worker`` command imports it; command modules share ``output``/``actions`` and
never import each other; the client, the gateway and the stack import no command.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("cotpay", "sandbox", "workflows", "activities", "runtime", "starter", "webhooks")
CLI_SHARED = {"starter.cli.output", "starter.cli.actions", "starter.cli.store_actions"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (deferred imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def sources(*packages: str) -> dict[str, set[str]]:
    return {
        module_name(path): imports(path)
        for package in packages
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_runtime_imports_neither_starter_nor_activities_nor_the_worker() -> None:
    for module, names in sources("runtime").items():
        bad = {n for n in names if under(n, "starter", "activities", "sandbox", "worker", "bench")}
        assert not bad, f"{module} imports {sorted(bad)}"


def test_webhooks_import_neither_starter_nor_activities_nor_temporal() -> None:
    """The dispatcher runs on the order store only (docs/webhooks.md): no Temporal client, no
    activity, nothing of the starter side, so the worker and the CLI can both run it."""
    modules = sources("webhooks")
    assert modules
    for module, names in modules.items():
        bad = {
            n
            for n in names
            if under(n, "starter", "activities", "sandbox", "worker", "bench", "temporalio")
        }
        assert not bad, f"{module} imports {sorted(bad)}"


def test_worker_imports_the_runtime_and_no_starter_module() -> None:
    names = imports(ROOT / "worker.py")
    assert not {n for n in names if under(n, "starter")}
    assert {n for n in names if under(n, "runtime")}


def test_only_the_worker_command_imports_worker_py() -> None:
    importers = sorted(
        module for module, names in sources(*PRODUCTION).items() if "worker" in names
    )
    assert importers == ["starter.cli.worker"]


@pytest.mark.parametrize("package", ["starter.client", "starter.gateway", "starter.stack"])
def test_client_gateway_and_stack_import_no_command(package: str) -> None:
    modules = {m: names for m, names in sources("starter").items() if under(m, package)}
    assert modules, package
    for module, names in modules.items():
        assert not {n for n in names if under(n, "starter.cli")}, module


def test_the_client_imports_neither_the_gateway_nor_the_stack() -> None:
    for module, names in sources("starter").items():
        if under(module, "starter.client"):
            assert not {n for n in names if under(n, "starter.gateway", "starter.stack")}, module


def test_command_modules_do_not_import_each_other() -> None:
    commands = (
        {module for module in sources("starter") if under(module, "starter.cli")}
        - CLI_SHARED
        - {"starter.cli", "starter.cli.__main__"}
    )
    for module, names in sources("starter").items():
        if module in commands:
            assert not names & commands, f"{module} imports {sorted(names & commands)}"
