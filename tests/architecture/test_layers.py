"""The package diagram of docs/architecture.md, enforced from the source (AST).

Each top-level package may import only the packages its row allows; ``workflows/`` imports no
I/O library; and no chain of module imports forms a cycle.
A new import that breaks the diagram fails here: change the diagram first, on purpose.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = {
    "cotpay",
    "sandbox",
    "workflows",
    "activities",
    "store",
    "runtime",
    "webhooks",
    "starter",
    "worker",
    "bench",
    "tests",
}

# package -> project packages it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "cotpay": set(),
    "sandbox": {"cotpay"},
    "activities": {"cotpay", "workflows", "store"},
    "workflows": {"cotpay", "activities", "store"},
    "store": {"cotpay", "workflows", "runtime"},
    "runtime": {"cotpay", "workflows", "store"},
    "webhooks": {"workflows", "store", "runtime"},
    "worker": {"cotpay", "workflows", "activities", "runtime", "store", "webhooks"},
    "starter": {
        "cotpay",
        "sandbox",
        "workflows",
        "activities",
        "runtime",
        "store",
        "webhooks",
        "worker",
    },
}

IO_LIBRARIES = {
    "httpx",
    "sqlalchemy",
    "alembic",
    "aiosqlite",
    "asyncpg",
    "fastapi",
    "starlette",
    "uvicorn",
    "socket",
    "subprocess",
    "urllib",
    "requests",
    "store.api",
    "store.db",
    "store.orders",
}


def _files(package: str) -> list[Path]:
    if package == "worker":
        return [ROOT / "worker.py"]
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Modules imported at run time: ``if TYPE_CHECKING:`` blocks are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_the_diagram_allows(package: str) -> None:
    bad: dict[str, set[str]] = {}
    for path in _files(package):
        used = {name.split(".")[0] for name in _imports(path)} & PROJECT
        extra = used - ALLOWED[package] - {package}
        if extra:
            bad[str(path.relative_to(ROOT))] = extra
    assert not bad, f"imports outside docs/architecture.md: {bad}"


def test_workflows_import_no_io() -> None:
    bad: dict[str, set[str]] = {}
    for path in _files("workflows"):
        names = _imports(path)
        hits = {n for n in names for lib in IO_LIBRARIES if n == lib or n.startswith(lib + ".")}
        if hits:
            bad[path.name] = hits
    assert not bad, f"workflow code imports I/O: {bad}"


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_no_import_cycle_between_modules() -> None:
    """Packages may use each other's modules both ways (``workflows`` calls ``activities``
    typed; ``activities`` reads ``workflows.models``), but no chain of modules may lead back
    to where it started: that is what makes an import order fragile."""
    modules = {_module(path): path for package in ALLOWED for path in _files(package)}

    def resolve(name: str) -> str | None:
        parts = name.split(".")
        while parts:
            candidate = ".".join(parts)
            if candidate in modules:
                return candidate
            parts.pop()
        return None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {resolve(n) for n in _imports(path)} - {None, module}
        graph[module] = {t for t in targets if t is not None}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:  # pragma: no cover - the failure message is the point
        pytest.fail(f"import cycle between modules: {err.args[1]}")
    assert "cotpay.codes" in order
