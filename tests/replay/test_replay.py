"""Every committed history must replay on today's workflow code: a change that is not
deterministic for running orders fails here (guard such changes with ``workflow.patched``).

The replayer uses the production data converter (``escrow_data_converter``) with the committed
test key ring: the plain histories pass through the codec unchanged, ``*_encrypted.json`` were
recorded with payload encryption on (``codec-test.keys``).

Shapes: the histories recorded before the ``order-store`` patch write nothing to the order
store; ``store_*`` and ``ipn_wrong_*`` are the shape since the ``order-store`` and
``ipn-amount-check`` patches (docs/store.md, docs/workflow.md); ``money_moved_*`` and
``rejection_in_flight`` the shape of the ``money-moved-guard`` and ``return-rejection-in-flight``
patches, ``early_*`` the shape of ``early-outcome-ipn`` (with every patch of their time).
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
from workflows.escrow import (
    COALESCE_SEARCH,
    EARLY_OUTCOME_PATCH,
    IPN_CHECK_PATCH,
    LEAN_PATCH,
    MONEY_GUARD_PATCH,
    ORDER_STORE_PATCH,
    REPEATED_DELIVERY_PATCH,
    RETURN_REJECTION_PATCH,
    EscrowOrderWorkflow,
)

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
    assert {
        "store_happy_path",
        "store_return_path",
        "ipn_wrong_amount",
        "ipn_wrong_refund",
    } <= names


def patches_and_activities(path: Path) -> tuple[set[str], set[str]]:
    patches: set[str] = set()
    activities: set[str] = set()
    for event in history_of(path).events:
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            details = event.marker_recorded_event_attributes.details
            if "patch-data" in details:
                [payload] = details["patch-data"].payloads
                patches.add(json.loads(payload.data)["id"])
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activities.add(event.activity_task_scheduled_event_attributes.activity_type.name)
    return patches, activities


# The histories of a patch's own path (recorded with all the patches of their time).
NEW_SHAPES = {
    "money_moved_": MONEY_GUARD_PATCH,
    "rejection_in_flight": RETURN_REJECTION_PATCH,
    "early_": EARLY_OUTCOME_PATCH,
    "repeated_delivery": REPEATED_DELIVERY_PATCH,
}


# Paths recorded again under ``lean-history`` (``record.py --suffix _lean``).
LEAN_PATHS = (
    "money_moved_slot",
    "rejection_in_flight",
    "early_refund",
    "repeated_delivery",
    "ipn_wrong_amount",
    "ipn_wrong_refund",
    "attention_retry",
    "expiry",
    "cancel_before_payment",
    "duplicate_ipns",
    "late_payment",
    "payout_too_early",
    "rejected_release",
)


def test_new_shapes_are_committed() -> None:
    names = {p.stem for p in HISTORIES}
    assert {"money_moved_slot", "rejection_in_flight", "early_refund", "repeated_delivery"} <= names


def test_only_its_own_histories_carry_the_early_outcome_marker() -> None:
    """``early-outcome-ipn`` is asked only when an outcome IPN comes before any call of its
    kind: no other path of the committed histories writes its marker."""
    for path in HISTORIES:
        patches, _ = patches_and_activities(path)
        own = path.stem.startswith("early_") and not path.stem.endswith("_lean")
        assert (EARLY_OUTCOME_PATCH in patches) is own, path.stem


def test_the_early_refund_waits_for_the_sellers_decision() -> None:
    """The shape of ``early-outcome-ipn``: after the early REFUNDED and the 10100 answer to the
    return request, the order starts the return window's timer (before the patch it ended
    REFUNDED at once) and ends on the second REFUNDED IPN."""
    events = history_of(HERE / "histories" / "early_refund.json").events
    kinds = [e.event_type for e in events]
    returns = [
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "cotpay.return_request"
    ]
    assert len(returns) == 1
    ipns = [
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and e.workflow_execution_signaled_event_attributes.signal_name == "ipn"
    ]
    # The HOLDING, the early REFUNDED, the REFUNDED that answers the request.
    assert len(ipns) == 3 and ipns[1] < returns[0] < ipns[2]
    timers = [i for i, kind in enumerate(kinds) if kind == EventType.EVENT_TYPE_TIMER_STARTED]
    assert any(returns[0] < i < ipns[2] for i in timers)


def test_lean_shapes_are_committed() -> None:
    names = {p.stem for p in HISTORIES}
    assert {"store_happy_path_lean", "store_return_path_lean", "store_outage_lean"} <= names
    # The paths of the earlier patches, recorded again under ``lean-history`` (which has their
    # rules without asking them).
    assert {f"{name}_lean" for name in LEAN_PATHS} <= names


def test_each_history_has_the_shape_its_name_says() -> None:
    """Old histories: no patch, no store write; new ones: the patches they were recorded with
    (``*_coalesced``: also ``coalesce-search-attributes``)."""
    for path in HISTORIES:
        patches, activities = patches_and_activities(path)
        if path.stem.endswith("_lean"):  # one marker: every earlier rule, writes local first
            assert patches == {LEAN_PATCH}, path.stem
            continue
        assert LEAN_PATCH not in patches, path.stem
        new = next((p for prefix, p in NEW_SHAPES.items() if path.stem.startswith(prefix)), None)
        if new is not None:  # recorded since these patches: every patch of its time, and its own
            assert {ORDER_STORE_PATCH, COALESCE_SEARCH, new} <= patches, path.stem
            assert "store.record" in activities, path.stem
            continue
        coalesced = path.stem.endswith("_coalesced")
        assert (COALESCE_SEARCH in patches) is coalesced, path.stem
        patches.discard(COALESCE_SEARCH)
        if path.stem.startswith(("store_", "ipn_wrong_")):
            assert ORDER_STORE_PATCH in patches and "store.record" in activities, path.stem
            assert (IPN_CHECK_PATCH in patches) is path.stem.startswith("ipn_wrong_"), path.stem
        else:
            assert not patches and "store.record" not in activities, path.stem


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
