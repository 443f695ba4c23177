"""How many tasks a worker runs at once, how many orders it keeps in memory and how its
sandbox loads the workflow code (``ESCROW_WORKER_*``; docs/deployment.md, "Sizing workers").

Unset values keep the Temporal SDK's defaults, except ``max_cached_workflows``, the sticky
cache: an order in the cache handles its next message without replaying its history; an order
evicted from it replays its history once when it wakes up (docs/benchmarks.md, section
``memory``). Its default is ours, 500 (the SDK's is 1000): with the SDK's default a worker
holding 10,000 open orders needed about 320 MB, with 500 it stays under 300 MB, and an evicted
order costs a few tens of milliseconds when it wakes, three or four times in its life.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

# Ours (see the module docstring; the SDK's is 1000).
DEFAULT_MAX_CACHED_WORKFLOWS = 500
# The SDK's defaults (temporalio.worker.Worker), reported by the benchmark when a value is unset.
SDK_MAX_CONCURRENT_ACTIVITIES = 100
SDK_MAX_CONCURRENT_WORKFLOW_TASKS = 100


class WorkerTuning(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESCROW_WORKER_", extra="ignore")

    max_cached_workflows: int = Field(default=DEFAULT_MAX_CACHED_WORKFLOWS, ge=0)
    max_concurrent_activities: int | None = Field(default=None, ge=1)
    max_concurrent_workflow_tasks: int | None = Field(default=None, ge=2)
    reload_workflow_modules: bool = False
    """True: the sandbox imports ``workflows/`` afresh for every order it loads (the SDK's
    default); False: the already imported modules are shared (they are pure: no I/O, no module
    state, docs/architecture.md), which halves the memory of a cached order."""

    def worker_kwargs(self) -> dict[str, Any]:
        """The ``Worker(...)`` keyword arguments for the values that are set."""
        values = {
            "max_cached_workflows": self.max_cached_workflows,
            "max_concurrent_activities": self.max_concurrent_activities,
            "max_concurrent_workflow_tasks": self.max_concurrent_workflow_tasks,
        }
        kwargs: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
        if not self.reload_workflow_modules:
            kwargs["workflow_runner"] = shared_modules_runner()
        return kwargs

    def effective(self) -> dict[str, int | bool]:
        """Every value as the worker runs with it (the SDK default where unset)."""
        return {
            "max_cached_workflows": self.max_cached_workflows,
            "max_concurrent_activities": _or(
                self.max_concurrent_activities, SDK_MAX_CONCURRENT_ACTIVITIES
            ),
            "max_concurrent_workflow_tasks": _or(
                self.max_concurrent_workflow_tasks, SDK_MAX_CONCURRENT_WORKFLOW_TASKS
            ),
            "reload_workflow_modules": self.reload_workflow_modules,
        }


def shared_modules_runner(*packages: str) -> SandboxedWorkflowRunner:
    """The sandbox with ``workflows`` (and ``packages``) passed through: the workflow code is
    imported once per process, not once per order; the sandbox's restrictions on
    non-deterministic calls still apply."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows", *packages)
    )


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
