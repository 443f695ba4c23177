"""The shape of the histories of patch ``coalesce-search-attributes`` (workflows/escrow.py):
fewer search-attribute upserts than the released shape, the same final search attributes, and
the patch marker once (docs/benchmarks.md, "Changes and their figures"). The ``store_*`` pairs
are recorded with the order store's writer too, whose activities land in more or fewer workflow
tasks depending on timing, so only the happy path without the store is compared in length."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from workflows.escrow import COALESCE_SEARCH, LEAN_PATCH

HISTORIES = Path(__file__).parent / "histories"
PATHS = sorted(p.stem.removesuffix("_coalesced") for p in HISTORIES.glob("*_coalesced.json"))
LEAN = sorted(
    p.stem.removesuffix("_lean")
    for p in HISTORIES.glob("store_*_lean.json")
    if (HISTORIES / f"{p.stem.removesuffix('_lean')}_coalesced.json").exists()
)
LOCAL_MARKER = "core_local_activity"
UPSERT = "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"
ESCROW_ATTRIBUTES = {"EscrowStatus", "CotpayOrderId", "PayoutNotBefore", "SellerId", "BuyerId"}


def events(name: str) -> list[dict[str, Any]]:
    text = (HISTORIES / f"{name}.json").read_text(encoding="utf-8")
    found: list[dict[str, Any]] = json.loads(text)["events"]
    return found


def patches(history: list[dict[str, Any]]) -> list[str]:
    """The ids of the patch markers, in order."""
    found = []
    for event in history:
        if event["eventType"] == "EVENT_TYPE_MARKER_RECORDED":
            details = event["markerRecordedEventAttributes"]["details"]
            for payload in details.get("patch-data", {}).get("payloads", []):
                found.append(json.loads(base64.b64decode(payload["data"]))["id"])
    return found


def escrow_upserts(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each upsert of the escrow's own attributes, decoded (the SDK's patch upsert left out)."""
    upserts = []
    for event in history:
        if event["eventType"] != UPSERT:
            continue
        fields = event["upsertWorkflowSearchAttributesEventAttributes"]["searchAttributes"][
            "indexedFields"
        ]
        values = {
            name: json.loads(base64.b64decode(payload["data"]))
            for name, payload in fields.items()
            if name in ESCROW_ATTRIBUTES
        }
        if values:
            upserts.append(values)
    return upserts


def final(upserts: list[dict[str, Any]]) -> dict[str, Any]:
    """The attributes after the last upsert; times only as present or not (the histories were
    recorded on different days)."""
    state: dict[str, Any] = {}
    for values in upserts:
        state.update(values)
    if "PayoutNotBefore" in state:
        state["PayoutNotBefore"] = "set"
    return state


def test_every_released_path_has_a_coalesced_history() -> None:
    assert "happy_path" in PATHS
    assert len(PATHS) >= 9


@pytest.mark.parametrize("path", PATHS)
def test_coalesced_history_upserts_less_and_ends_the_same(path: str) -> None:
    released, coalesced = events(path), events(f"{path}_coalesced")
    assert patches(coalesced).count(COALESCE_SEARCH) == 1
    assert COALESCE_SEARCH not in patches(released)
    before, after = escrow_upserts(released), escrow_upserts(coalesced)
    assert len(after) < len(before)
    assert final(after) == final(before)


def test_happy_path_sheds_upserts() -> None:
    released, coalesced = events("happy_path"), events("happy_path_coalesced")
    assert len(escrow_upserts(released)) == 8
    assert len(escrow_upserts(coalesced)) <= 5
    assert len(coalesced) < len(released)


def local_writes(history: list[dict[str, Any]]) -> int:
    """Local-activity markers (each one attempt of a store write)."""
    return sum(
        1
        for event in history
        if event["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
        and event["markerRecordedEventAttributes"]["markerName"] == LOCAL_MARKER
    )


def store_activities(history: list[dict[str, Any]]) -> int:
    return sum(
        1
        for event in history
        if event["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
        and event["activityTaskScheduledEventAttributes"]["activityType"]["name"] == "store.record"
    )


def test_every_store_path_has_a_lean_history() -> None:
    assert LEAN == ["store_happy_path", "store_return_path"]


@pytest.mark.parametrize("path", LEAN)
def test_lean_writes_shed_the_store_activities(path: str) -> None:
    """Patch ``lean-history`` (docs/store.md, docs/workflow.md): the same path writes through
    local-activity markers, no ``store.record`` activity, one patch marker instead of one per
    patch, far fewer events, and the same final search attributes."""
    regular, lean = events(f"{path}_coalesced"), events(f"{path}_lean")
    assert patches(lean) == [LEAN_PATCH] and LEAN_PATCH not in patches(regular)
    # One regular write at most: the one an update waits for in a task that schedules a Cotpay
    # call (the return request of ``open_dispute``) goes out beside the call.
    assert store_activities(regular) >= 5 and store_activities(lean) <= 1
    assert local_writes(regular) == 0 and local_writes(lean) >= 4
    assert len(lean) < len(regular) - 40
    assert final(escrow_upserts(lean)) == final(escrow_upserts(regular))


def task_commands(history: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The events each workflow task's completion recorded (its commands), task by task."""
    tasks: list[list[dict[str, Any]]] = []
    for event in history:
        if event["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_COMPLETED":
            tasks.append([])
        elif event["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED":
            if tasks:
                tasks.append([])  # what follows belongs to no task until the next completion
        elif tasks:
            tasks[-1].append(event)
    return tasks


@pytest.mark.parametrize("name", sorted(p.stem for p in HISTORIES.glob("*_lean.json")))
def test_no_local_write_shares_a_task_with_a_cotpay_call(name: str) -> None:
    """A local write holds its workflow task until it ends; under ``lean-history`` it never
    runs in a task that schedules a Cotpay call, so the store never holds a Cotpay call back."""
    for commands in task_commands(events(name)):
        calls = [
            e
            for e in commands
            if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
            and e["activityTaskScheduledEventAttributes"]["activityType"]["name"].startswith(
                "cotpay."
            )
        ]
        assert not (calls and local_writes(commands)), name


def test_a_failed_local_write_falls_back_to_the_activity_then_goes_local_again() -> None:
    history = events("store_outage_lean")
    assert store_activities(history) == 1
    assert local_writes(history) >= 4
