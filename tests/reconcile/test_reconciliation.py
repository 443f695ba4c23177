"""The reconciliation workflow on a real dev server: a consistent system gives a clean run; each
seeded anomaly is found, once; closing a finding is final for history and not for the present;
the Schedule is created once across worker starts; the CLI runs one and waits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from cotpay.settings import CotpaySettings
from runtime.metrics import RECONCILE_RUNS
from runtime.reconcile import ReconcileSettings, ensure_schedule
from runtime.settings import EscrowSettings
from runtime.temporal import TemporalConfig
from starter.cli import main
from store.models import FindingFilter, FindingKind, MoneyKind
from tests.reconcile.conftest import Rig
from tests.store.factories import event, write
from worker import run_worker
from workflows.models import EscrowStatus
from workflows.reconcile_checks import RECONCILE_WORKFLOW_TYPE, SCHEDULE_ID

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

S = EscrowStatus
K = FindingKind
M = MoneyKind


def ref(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def seed_paid_out(rig: Rig, order_ref: str, id_order: int) -> None:
    """A closed order the store says was paid out: consistent with Cotpay's ledger."""
    now = datetime.now(UTC)
    money: dict[str, Any] = {"cotpay_order_id": id_order, "amount": 150_000}
    await rig.store.record(
        write(
            order_ref,
            S.PAID_OUT,
            [
                event(1, now - timedelta(hours=1), status=S.HELD, money=M.HELD, **money),
                event(2, now - timedelta(minutes=1), status=S.PAID_OUT, money=M.PAID_OUT, **money),
            ],
            created_at=now - timedelta(hours=2),
            cotpay_order_id=id_order,
            held_at=now - timedelta(hours=1),
            paid_out_at=now - timedelta(minutes=1),
        )
    )


async def findings_by_order(rig: Rig) -> dict[str, set[FindingKind]]:
    found: dict[str, set[FindingKind]] = {}
    for finding in await rig.store.list_findings():
        found.setdefault(finding.order_ref or finding.key, set()).add(finding.kind)
    return found


async def test_a_consistent_system_gives_a_clean_run(rig: Rig) -> None:
    waiting = await rig.start()
    await waiting.until(S.AWAITING_PAYMENT)
    held = await rig.start()
    await held.hold()
    for order in (waiting, held):
        await rig.mirror(order)
    await seed_paid_out(rig, ref("paid"), await rig.paid_out_at_cotpay())
    await rig.store.record(
        write(ref("expired"), S.EXPIRED, [event(1, datetime.now(UTC), status=S.EXPIRED)])
    )
    await rig.visible(2)
    before = RECONCILE_RUNS.labels(outcome="clean")._value.get()

    report = await rig.reconcile()

    assert report.outcome == "clean", report
    orders, _money, ledger = report.checks
    assert [c.check for c in report.checks] == ["orders", "money", "ledger"]
    assert orders.examined == 4  # two running workflows, two store rows in an open status
    assert ledger.skipped is None and ledger.examined == 1
    assert all(c.found == {} and c.error is None for c in report.checks)
    assert report.open == {} and report.finished_at is not None
    assert await rig.store.list_findings() == []
    assert RECONCILE_RUNS.labels(outcome="clean")._value.get() == before + 1


async def test_each_seeded_anomaly_is_found_once(rig: Rig) -> None:
    now = datetime.now(UTC)
    # Running workflows: A's store row lags behind (AWAITING_PAYMENT, the workflow is HELD), B's
    # row has another amount, M has no row, C agrees.
    lagging = await rig.start()
    await lagging.until(S.AWAITING_PAYMENT)
    await rig.mirror(lagging)
    await lagging.hold()
    amount = await rig.start()
    await amount.until(S.AWAITING_PAYMENT)
    await rig.mirror(amount, amount=99_000)
    missing = await rig.start()
    await missing.until(S.AWAITING_PAYMENT)
    control = await rig.start()
    await control.hold()
    await rig.mirror(control)
    # Store rows only.
    unwatched, stuck, both, late, doubt, ledger = (
        ref(n) for n in ("unwatched", "stuck", "both", "late", "doubt", "ledger")
    )
    hour = timedelta(hours=1)
    await rig.store.record(
        write(unwatched, S.HELD, [event(1, now - 3 * hour, status=S.HELD)], held_at=now - 3 * hour)
    )
    await rig.store.record(
        write(
            stuck,
            S.DELIVERED,
            [event(1, now - 72 * hour, status=S.DELIVERED)],
            created_at=now - 100 * hour,
            delivered_at=now - 72 * hour,
            payout_not_before=now - 70 * hour,
        )
    )
    await rig.store.record(
        write(
            both,
            S.REFUNDED,
            [
                event(1, now - 5 * hour, status=S.PAID_OUT, money=M.PAID_OUT),
                event(2, now - 4 * hour, status=S.REFUNDED, money=M.REFUNDED),
            ],
            cotpay_order_id=None,
        )
    )
    await rig.store.record(
        write(late, S.EXPIRED, [event(1, now - 9 * hour, status=S.EXPIRED)], cotpay_order_id=None)
    )
    await rig.store.append_event(
        late,
        time=now - hour,
        kind="ipn_after_close",
        money=M.IPN_AFTER_CLOSE,
        transaction_id="tx-late",
        amount=150_000,
        data={"status": "HOLDING"},
    )
    await rig.store.record(
        write(
            doubt,
            S.NEEDS_ATTENTION,
            [event(1, now - 2 * hour, status=S.PAYING_OUT, money=M.PAYOUT_IN_DOUBT)],
            cotpay_order_id=None,
        )
    )
    id_order = await rig.paid_out_at_cotpay()  # Cotpay paid out; the store says EXPIRED
    await rig.store.record(
        write(ledger, S.EXPIRED, [event(1, now - hour, status=S.EXPIRED)], cotpay_order_id=id_order)
    )
    await rig.visible(4)

    report = await rig.reconcile()

    expected = {
        lagging.inp.order_ref: {K.STATUS_MISMATCH},
        amount.inp.order_ref: {K.AMOUNT_MISMATCH},
        missing.inp.order_ref: {K.MISSING_IN_STORE},
        unwatched: {K.STATUS_MISMATCH},
        stuck: {K.STATUS_MISMATCH, K.PAST_DEADLINE},
        both: {K.PAID_AND_REFUNDED},
        late: {K.IPN_AFTER_CLOSE},
        doubt: {K.PAYOUT_IN_DOUBT, K.STATUS_MISMATCH},
        ledger: {K.LEDGER_MISMATCH},
    }
    assert await findings_by_order(rig) == expected
    assert report.outcome == "findings"
    listed = [f for c in report.checks for f in c.findings]
    assert len(listed) == len(await rig.store.list_findings()) == 12  # ledger: hold and payout
    assert all(f.new for f in listed)
    assert report.open == {
        "status_mismatch": 4,
        "amount_mismatch": 1,
        "missing_in_store": 1,
        "past_deadline": 1,
        "paid_and_refunded": 1,
        "ipn_after_close": 1,
        "payout_in_doubt": 1,
        "ledger_mismatch": 2,
    }
    ledger_keys = {f.key for f in listed if f.kind is K.LEDGER_MISMATCH}
    assert ledger_keys == {f"{ledger}:hold", f"{ledger}:payout"}

    # A second run finds the same, and opens nothing new.
    again = await rig.reconcile()
    assert sorted(f.id for c in again.checks for f in c.findings) == sorted(f.id for f in listed)
    assert not any(f.new for c in again.checks for f in c.findings)
    assert again.open == report.open

    # Closing: the stranded IPN stays closed (history); the lagging row opens again (present).
    open_now = {(f.kind, f.order_ref): f for f in await rig.store.list_findings()}
    stranded = open_now[(K.IPN_AFTER_CLOSE, late)]
    mismatch = open_now[(K.STATUS_MISMATCH, lagging.inp.order_ref)]
    for finding in (stranded, mismatch):
        await rig.store.close_finding(finding.id, "ops-anna", "checked")
    await rig.reconcile()
    after = await rig.store.list_findings(FindingFilter(order_ref=late))
    assert after == []
    reopened = await rig.store.list_findings(FindingFilter(order_ref=lagging.inp.order_ref))
    assert [f.kind for f in reopened] == [K.STATUS_MISMATCH] and reopened[0].id != mismatch.id


async def test_two_worker_starts_create_the_schedule_once(
    env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCROW_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}")
    for name in ("ESCROW_RECONCILE_SCHEDULE", "ESCROW_RECONCILE_CRON", "ESCROW_METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    queue = f"schedule-{uuid.uuid4().hex[:8]}"
    temporal = TemporalConfig(
        address=env.client.service_client.config.target_host, task_queue=queue
    )
    cotpay = CotpaySettings(base_url="http://127.0.0.1:9", envelope="plain")
    handle = env.client.get_schedule_handle(SCHEDULE_ID)
    try:
        created = []
        for _ in range(2):
            stop = asyncio.Event()
            stop.set()  # start fully (store, worker, Schedule), then stop at once
            await run_worker(temporal, cotpay, EscrowSettings(), stop=stop)
            created.append(await handle.describe())
        first, second = created
        assert first.info.created_at == second.info.created_at
        assert second.info.last_updated_at is None  # the second start changed nothing
        action = second.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.task_queue, action.id) == (
            RECONCILE_WORKFLOW_TYPE,
            queue,
            SCHEDULE_ID,
        )
        spec = second.schedule.spec
        assert spec.time_zone_name == "Asia/Ho_Chi_Minh"
        assert [c.hour[0].start for c in spec.calendars] == [2]
        listed: list[str] = []
        for _ in range(50):
            listed = [s.id async for s in await env.client.list_schedules()]
            if SCHEDULE_ID in listed:
                break
            await asyncio.sleep(0.1)
        assert listed.count(SCHEDULE_ID) == 1

        # A new cron is applied to the same Schedule; switched off, the worker leaves it alone.
        moved = ReconcileSettings(cron="30 3 * * *")
        assert await ensure_schedule(env.client, moved, queue) == "updated"
        assert await ensure_schedule(env.client, moved, queue) == "unchanged"
        described = await handle.describe()
        calendar = described.schedule.spec.calendars[0]
        assert (calendar.hour[0].start, calendar.minute[0].start) == (3, 30)
        assert described.info.created_at == first.info.created_at
        off = ReconcileSettings(schedule=False)
        assert await ensure_schedule(env.client, off, queue) == "disabled"
    finally:
        with contextlib.suppress(RPCError):
            await handle.delete()


async def test_cli_runs_one_lists_and_closes(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    late = ref("late")
    now = datetime.now(UTC)
    await rig.store.record(write(late, S.CANCELLED, [event(1, now, status=S.CANCELLED)]))
    await rig.store.append_event(
        late, time=now, kind="ipn_after_close", money=M.IPN_AFTER_CLOSE, transaction_id="tx-9"
    )
    monkeypatch.setenv("TEMPORAL_ADDRESS", rig.env.client.service_client.config.target_host)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", rig.env.client.namespace)
    monkeypatch.setenv("TEMPORAL_TASK_QUEUE", rig.task_queue)
    monkeypatch.setenv("ESCROW_DATABASE_URL", str(rig.store.db.engine.url))

    async def cli(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        # The worker of this process logs to stdout too: keep its lines out of the output.
        with structlog.testing.capture_logs():
            code = await asyncio.to_thread(main, list(argv))
        return code, capsys.readouterr().out

    code, out = await cli("ops", "reconcile", "--run", "--json", "--operator", "ops-binh")
    report = json.loads(out)
    assert code == 0, out
    assert (report["outcome"], report["trigger"], report["requestedBy"]) == (
        "findings",
        "manual",
        "ops-binh",
    )
    assert report["open"] == {"ipn_after_close": 1}

    code, out = await cli("ops", "reconcile", "--json")
    (finding,) = json.loads(out)["findings"]
    assert (finding["kind"], finding["orderRef"], finding["key"]) == (
        "ipn_after_close",
        late,
        f"{late}:tx-9",
    )
    code, text = await cli("ops", "reconcile")
    assert code == 0 and late in text and "ipn_after_close" in text

    code, out = await cli(
        "ops",
        "reconcile",
        "close",
        str(finding["id"]),
        "--note",
        "refunded by hand",
        "--json",
        "--operator",
        "ops-binh",
    )
    closed = json.loads(out)
    assert (
        code == 0 and closed["closedBy"] == "ops-binh" and closed["closeNote"] == "refunded by hand"
    )
    assert json.loads((await cli("ops", "reconcile", "--json"))[1]) == {"findings": []}
    code, text = await cli("ops", "reconcile", "--all")
    assert code == 0 and "ops-binh" in text
    code, out = await cli("ops", "reconcile", "close", "99999", "--note", "x", "--json")
    assert code == 1 and json.loads(out)["error"] == "not_found"
