"""Every committed history must replay on today's workflow code: a change that is not
deterministic for running orders fails here (guard such changes with ``workflow.patched``).

The replayer uses the production data converter (``escrow_data_converter``) with the committed
test key ring: the plain histories pass through the codec unchanged, ``*_encrypted.json`` were
recorded with payload encryption on (``codec-test.keys``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from runtime.codec import ENCODING, CodecSettings, escrow_data_converter
from workflows.escrow import EscrowOrderWorkflow

HERE = Path(__file__).parent
HISTORIES = sorted((HERE / "histories").glob("*.json"))
TEST_KEYS = HERE / "codec-test.keys"
CONVERTER = escrow_data_converter(CodecSettings(keys=None, keys_file=TEST_KEYS))


def history_of(path: Path) -> WorkflowHistory:
    text = path.read_text(encoding="utf-8")
    workflow_id = json.loads(text)["events"][0]["workflowExecutionStartedEventAttributes"].get(
        "workflowId", path.stem
    )
    return WorkflowHistory.from_json(workflow_id, text)


def test_histories_are_committed() -> None:
    names = {p.stem for p in HISTORIES}
    assert {"happy_path", "return_path", "expiry", "attention_retry"} <= names
    assert {
        "payout_too_early",
        "late_payment",
        "rejected_release",
        "cancel_before_payment",
        "duplicate_ipns",
    } <= names
    assert "happy_path_encrypted" in names


def test_histories_end_in_a_closed_workflow() -> None:
    for path in HISTORIES:
        last = history_of(path).events[-1]
        assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, path.stem


def test_encrypted_history_is_encrypted_and_plain_ones_are_not() -> None:
    for path in HISTORIES:
        started = history_of(path).events[0].workflow_execution_started_event_attributes
        [payload] = started.input.payloads
        encrypted = payload.metadata["encoding"] == ENCODING
        assert encrypted is path.stem.endswith("_encrypted"), path.stem


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replay(path: Path) -> None:
    replayer = Replayer(workflows=[EscrowOrderWorkflow], data_converter=CONVERTER)
    await replayer.replay_workflow(history_of(path))


async def test_replay_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """``workflow.logger`` is replay-safe: a replayed order that needed attention stays quiet."""
    replayer = Replayer(workflows=[EscrowOrderWorkflow], data_converter=CONVERTER)
    with caplog.at_level(logging.DEBUG, logger="temporalio.workflow"):
        await replayer.replay_workflow(history_of(HERE / "histories" / "attention_retry.json"))
    assert [r.getMessage() for r in caplog.records if r.name == "temporalio.workflow"] == []
