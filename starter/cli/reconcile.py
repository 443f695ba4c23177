"""``cotpay-escrow ops reconcile``: the daily reconciliation's findings (docs/reconciliation.md).

- ``ops reconcile [--all] [--kind K] [--order REF]``: the open findings (all with ``--all``),
  from the order store (``ESCROW_DATABASE_URL``).
- ``ops reconcile --run``: run one reconciliation now (the workflow, on the worker) and wait for
  its report. Needs Temporal (``TEMPORAL_*``) and a running worker.
- ``ops reconcile --schedule``: create the daily Schedule, or align it with
  ``ESCROW_RECONCILE_CRON``/``_TIME_ZONE`` (the worker does the same at start).
- ``ops reconcile close ID --note WHY``: close a finding, recording who (``--operator`` or the
  login name) and why.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowFailureError

from runtime.codec import CodecError
from runtime.reconcile import ReconcileSettings, ensure_schedule
from runtime.temporal import TemporalConfig, TemporalConfigError, connect, release_client
from starter.cli.output import command_group, dump, emit, fail, json_flag, table, when
from store.api import OrderStore
from store.errors import FindingNotFound, StoreError
from store.models import Finding, FindingFilter, FindingKind
from workflows.models import DEFAULT_MERCHANT
from workflows.reconcile_checks import (
    RECONCILE_WORKFLOW_TYPE,
    SCHEDULE_ID,
    ReconcileInput,
    ReconcileReport,
)

_T = TypeVar("_T")

DEFAULT_WAIT_S = 1800.0
DETAIL_WIDTH = 90


def _login_name() -> str:
    try:
        return getpass.getuser()[:100]
    except (KeyError, OSError):
        return "cli"


# --- printing ----------------------------------------------------------------------------------


def _short(text: str, width: int = DETAIL_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_findings(findings: list[Finding]) -> str:
    if not findings:
        return "No findings."
    closed = any(f.closed_at for f in findings)
    headers = ["ID", "KIND", "ORDER REF", "OPENED"]
    headers += ["CLOSED", "BY"] if closed else []
    rows = []
    for f in findings:
        ref = f.order_ref or f.key
        if f.merchant != DEFAULT_MERCHANT:
            ref = f"{f.merchant}:{ref}"  # another merchant's order (may share the orderRef)
        row = [str(f.id), f.kind.value, ref, when(f.opened_at)]
        row += [when(f.closed_at), f.closed_by or "-"] if closed else []
        rows.append([*row, _short(f.detail)])
    return table([*headers, "DETAIL"], rows)


def findings_json(findings: list[Finding]) -> Any:
    return {"findings": [dump(f) for f in findings]}


def render_finding(finding: Finding) -> str:
    state = (
        f"closed {when(finding.closed_at)} by {finding.closed_by}"
        + (f": {finding.close_note}" if finding.close_note else "")
        if finding.closed_at
        else "open"
    )
    return (
        f"Finding {finding.id} ({finding.kind.value}, {finding.order_ref or finding.key}): {state}"
    )


def render_report(report: ReconcileReport) -> str:
    by = f" by {report.requested_by}" if report.requested_by else ""
    lines = [
        f"Reconciliation {report.outcome} ({report.trigger}{by}), "
        f"{when(report.started_at)} to {when(report.finished_at)}",
        "",
    ]
    rows = []
    for c in report.checks:
        note = c.error or (f"skipped: {c.skipped}" if c.skipped else "; ".join(c.notes))
        found = ", ".join(f"{k} {n}" for k, n in sorted(c.found.items())) or "-"
        rows.append([c.check, str(c.examined), str(c.total), str(c.new), found, _short(note, 60)])
    lines.append(table(["CHECK", "EXAMINED", "FOUND", "NEW", "KINDS", "NOTE"], rows))
    seen = [f for c in report.checks for f in c.findings]
    if seen:
        lines += ["", "Findings of this run:"]
        lines += [
            "  " + line
            for line in table(
                ["ID", "KIND", "ORDER REF", "NEW", "DETAIL"],
                [
                    [
                        str(f.id),
                        f.kind.value,
                        f.order_ref or f.key,
                        "yes" if f.new else "",
                        f.detail,
                    ]
                    for f in seen
                ],
            ).splitlines()
        ]
    total = sum(report.open.values())
    opened = ", ".join(f"{k} {n}" for k, n in sorted(report.open.items()))
    lines += ["", f"Open findings now: {total}" + (f" ({opened})" if opened else "")]
    return "\n".join(lines)


def report_json(report: ReconcileReport) -> Any:
    return {**dump(report), "outcome": report.outcome}


# --- actions -----------------------------------------------------------------------------------


def _with_store(args: argparse.Namespace, action: Callable[[OrderStore], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        async with OrderStore.open() as store:
            return await action(store)

    return asyncio.run(run())


def _list(args: argparse.Namespace) -> int:
    where = FindingFilter(
        kind=FindingKind(args.kind) if args.kind else None,
        order_ref=args.order,
        open_only=not args.all,
    )
    try:
        findings = _with_store(args, lambda store: store.list_findings(where))
    except StoreError as exc:
        return fail(args, "store_unavailable", str(exc))
    emit(args, render_findings(findings), findings_json(findings))
    return 0


def _close(args: argparse.Namespace) -> int:
    who = args.operator or _login_name()
    try:
        finding = _with_store(
            args, lambda store: store.close_finding(args.finding_id, who, args.note)
        )
    except FindingNotFound as exc:
        return fail(args, "not_found", str(exc))
    except StoreError as exc:
        return fail(args, "store_unavailable", str(exc))
    emit(args, render_finding(finding), dump(finding))
    return 0


async def _temporal(action: Callable[[Client, TemporalConfig], Awaitable[_T]]) -> _T:
    try:
        config = TemporalConfig.from_env()
        client = await connect(config)
        return await action(client, config)
    finally:
        await release_client()


def _on_temporal(
    args: argparse.Namespace, action: Callable[[Client, TemporalConfig], Awaitable[_T]]
) -> _T | int:
    """Run ``action`` against Temporal; an int is the exit code of a failure already printed."""
    try:
        return asyncio.run(_temporal(action))
    except (CodecError, TemporalConfigError) as exc:
        return fail(args, "config_error", str(exc))
    except RuntimeError as exc:
        if "connect" not in str(exc).lower():
            raise
        return fail(args, "temporal_unavailable", f"cannot reach Temporal: {exc}")


def _run_now(args: argparse.Namespace) -> int:
    workflow_id = f"{SCHEDULE_ID}-manual-{uuid.uuid4().hex[:8]}"

    async def action(client: Client, config: TemporalConfig) -> ReconcileReport | str:
        handle = await client.start_workflow(
            RECONCILE_WORKFLOW_TYPE,
            ReconcileInput(trigger="manual", requested_by=args.operator or _login_name()),
            id=workflow_id,
            task_queue=config.task_queue,
            result_type=ReconcileReport,
        )
        try:
            return await asyncio.wait_for(handle.result(), timeout=args.wait)
        except TimeoutError:
            return f"still running after {args.wait:g}s: workflow {workflow_id}"
        except WorkflowFailureError as exc:
            return f"workflow {workflow_id} failed: {exc.cause}"

    result = _on_temporal(args, action)
    if isinstance(result, int):
        return result
    if isinstance(result, str):
        return fail(args, "reconcile_failed", result)
    emit(args, render_report(result), report_json(result))
    return 1 if result.outcome == "incomplete" else 0


def _schedule(args: argparse.Namespace) -> int:
    settings = ReconcileSettings().model_copy(update={"schedule": True})

    async def action(client: Client, config: TemporalConfig) -> str:
        return await ensure_schedule(client, settings, config.task_queue)

    outcome = _on_temporal(args, action)
    if isinstance(outcome, int):
        return outcome
    document = {
        "schedule": SCHEDULE_ID,
        "outcome": outcome,
        "cron": settings.cron,
        "timeZone": settings.time_zone,
    }
    emit(
        args,
        f"Schedule {SCHEDULE_ID}: {outcome} (cron '{settings.cron}', {settings.time_zone})",
        document,
    )
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    if args.run and args.schedule:
        return fail(args, "invalid_request", "give --run or --schedule, not both")
    if args.run:
        return _run_now(args)
    if args.schedule:
        return _schedule(args)
    return _list(args)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commands = command_group(subparsers, "ops")
    parser = commands.add_parser(
        "reconcile",
        help="reconciliation findings: list, run one now, create the schedule, close one",
        description="Open findings of the daily reconciliation and stranded money (order "
        "store, ESCROW_DATABASE_URL); --run runs one now (TEMPORAL_*); see "
        "docs/reconciliation.md.",
    )
    parser.add_argument("--all", action="store_true", help="closed findings too")
    parser.add_argument("--kind", choices=[k.value for k in FindingKind], default=None)
    parser.add_argument("--order", default=None, metavar="ORDER_REF", help="one order's findings")
    parser.add_argument("--run", action="store_true", help="run one reconciliation now, wait")
    parser.add_argument(
        "--schedule", action="store_true", help="create or align the daily Schedule"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_S,
        help=f"with --run: seconds to wait for the report (default {DEFAULT_WAIT_S:g})",
    )
    parser.add_argument("--operator", default="", help="who (default: login name)")
    json_flag(parser)
    parser.set_defaults(func=_reconcile)
    actions = parser.add_subparsers(dest="reconcile_command", metavar="ACTION")
    close = actions.add_parser("close", help="close a finding once it is handled")
    close.add_argument("finding_id", metavar="ID", type=int)
    close.add_argument("--note", required=True, help="what was done (recorded on the finding)")
    close.add_argument("--operator", default="", help="who (default: login name)")
    json_flag(close)
    close.set_defaults(func=_close)
