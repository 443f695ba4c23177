"""Every committed history must replay on today's workflow code: a change that is not
deterministic for running orders fails here (guard such changes with ``workflow.patched``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.escrow import EscrowOrderWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_committed() -> None:
    names = {p.stem for p in HISTORIES}
    assert {"happy_path", "return_path", "expiry", "attention_retry"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replay(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    workflow_id = json.loads(text)["events"][0]["workflowExecutionStartedEventAttributes"].get(
        "workflowId", path.stem
    )
    history = WorkflowHistory.from_json(workflow_id, text)
    replayer = Replayer(workflows=[EscrowOrderWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
