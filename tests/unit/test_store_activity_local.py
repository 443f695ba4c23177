"""``store.record``'s local attempts (patch ``store-local-writes``, activities/store_activities.py):
once this worker's store has failed, a local attempt gives up at once, so that the workflow task
it would hold open goes on and the write is sent as the regular activity; a success ends that."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.store_activities import LOCAL_SKIP_AFTER_FAILURE, StoreActivities
from store.errors import StoreUnavailable
from store.models import OrderWrite, WriteResult
from workflows.models import OrderView
from workflows.store_writes import order_write


class FakeStore:
    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    async def record(self, write: OrderWrite) -> WriteResult:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("down (test)")
        return WriteResult(order_moved=True, events_inserted=len(write.events))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _env(*, local: bool) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, is_local=local)
    return env


def _write() -> OrderWrite:
    view = cast(Any, OrderView).model_construct(order_ref="o-1", timeline=[])
    return order_write(view, created_at=datetime(2026, 1, 1, tzinfo=UTC), after_seq=0, revision=1)


async def test_local_attempts_skip_a_store_that_just_failed() -> None:
    store, clock = FakeStore(), Clock()
    acts = StoreActivities(cast(Any, store), clock=clock)
    write = _write()
    assert (await _env(local=True).run(acts.record, write)).order_moved
    store.down = True
    with pytest.raises(ApplicationError) as failed:
        await _env(local=True).run(acts.record, write)
    assert failed.value.type == "StoreUnavailable" and store.calls == 2
    # Local attempts now give up without asking the store; regular ones still ask it.
    with pytest.raises(ApplicationError) as skipped:
        await _env(local=True).run(acts.record, write)
    assert skipped.value.type == "StoreUnavailable" and store.calls == 2
    with pytest.raises(ApplicationError):
        await _env(local=False).run(acts.record, write)
    assert store.calls == 3
    # After the window a local attempt asks the store again; a success ends the skipping.
    clock.now += LOCAL_SKIP_AFTER_FAILURE + 1
    store.down = False
    assert (await _env(local=True).run(acts.record, write)).order_moved
    assert store.calls == 4
    assert (await _env(local=True).run(acts.record, write)).order_moved
    assert store.calls == 5


async def test_a_regular_success_ends_the_skipping_at_once() -> None:
    store, clock = FakeStore(), Clock()
    acts = StoreActivities(cast(Any, store), clock=clock)
    store.down = True
    with pytest.raises(ApplicationError):
        await _env(local=False).run(acts.record, _write())
    store.down = False
    assert (await _env(local=False).run(acts.record, _write())).order_moved
    assert (await _env(local=True).run(acts.record, _write())).order_moved
    assert store.calls == 3
