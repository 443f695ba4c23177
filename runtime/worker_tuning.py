"""How many tasks a worker runs at once and how many orders it keeps in memory
(``ESCROW_WORKER_*``; docs/deployment.md, "Sizing workers").

Unset values keep the Temporal SDK's defaults. ``max_cached_workflows`` is the sticky cache: an
order in the cache handles its next message without replaying its history; an order evicted
from it replays its history once when it wakes up (docs/benchmarks.md, section ``memory``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The SDK's defaults (temporalio.worker.Worker), reported by the benchmark when a value is unset.
SDK_MAX_CACHED_WORKFLOWS = 1000
SDK_MAX_CONCURRENT_ACTIVITIES = 100
SDK_MAX_CONCURRENT_WORKFLOW_TASKS = 100


class WorkerTuning(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESCROW_WORKER_", extra="ignore")

    max_cached_workflows: int | None = Field(default=None, ge=0)
    max_concurrent_activities: int | None = Field(default=None, ge=1)
    max_concurrent_workflow_tasks: int | None = Field(default=None, ge=2)

    def worker_kwargs(self) -> dict[str, Any]:
        """The ``Worker(...)`` keyword arguments for the values that are set."""
        values = {
            "max_cached_workflows": self.max_cached_workflows,
            "max_concurrent_activities": self.max_concurrent_activities,
            "max_concurrent_workflow_tasks": self.max_concurrent_workflow_tasks,
        }
        return {name: value for name, value in values.items() if value is not None}

    def effective(self) -> dict[str, int]:
        """Every value as the worker runs with it (the SDK default where unset)."""
        return {
            "max_cached_workflows": _or(self.max_cached_workflows, SDK_MAX_CACHED_WORKFLOWS),
            "max_concurrent_activities": _or(
                self.max_concurrent_activities, SDK_MAX_CONCURRENT_ACTIVITIES
            ),
            "max_concurrent_workflow_tasks": _or(
                self.max_concurrent_workflow_tasks, SDK_MAX_CONCURRENT_WORKFLOW_TASKS
            ),
        }


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
