"""What the command modules print: tables, order views, times in Vietnam, JSON and errors.

Every command prints text by default and JSON with ``--json`` (``json_flag``); a refusal is one
line on stderr, ``error [<code>]: <message>``, or ``{"error": ..., "message": ...}`` with
``--json`` (docs/cli.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from workflows.models import OrderView

VN = ZoneInfo("Asia/Ho_Chi_Minh")
PROGRAM = "cotpay-escrow"


DEFAULT_UI = "http://127.0.0.1:8233"


def ui_list_url(query: str, *, ui: str | None = None, namespace: str | None = None) -> str:
    """The Temporal UI's workflow list filtered by a visibility ``query`` (docs/runbook.md);
    the UI from ``TEMPORAL_UI_URL`` (default the embedded one), the namespace from
    ``TEMPORAL_NAMESPACE``."""
    base = (ui or os.environ.get("TEMPORAL_UI_URL") or DEFAULT_UI).rstrip("/")
    space = namespace or os.environ.get("TEMPORAL_NAMESPACE") or "default"
    return f"{base}/namespaces/{quote(space, safe='')}/workflows?query={quote(query, safe='')}"


def command_name() -> str:
    """How to call this CLI from the current directory, as docs/cli.md says: ``cotpay-escrow``
    when that is the one on PATH (an activated venv), else the script's path, e.g.
    ``.venv/bin/cotpay-escrow`` (relative when it is below the current directory)."""
    script = Path(sys.prefix) / "bin" / PROGRAM
    if not script.exists():
        return f"{Path(sys.executable).name} -m starter.cli"
    on_path = shutil.which(PROGRAM)
    if on_path is not None and Path(on_path).resolve() == script.resolve():
        return PROGRAM
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


_GROUPS: dict[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]] = {}


def command_group(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, **kwargs: Any
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The subcommands of the group ``name`` (``cotpay-escrow ops ...``), made by the first
    module that asks (with its ``help``/``description``), so that several command modules can
    add commands to one group without importing each other."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, **kwargs)
        _GROUPS[parser] = parser.add_subparsers(
            dest=f"{name}_command", metavar="ACTION", required=True
        )
    return _GROUPS[parser]


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def fail(args: argparse.Namespace, code: str, message: str) -> int:
    """Report a refusal or failure the way the command's output is set; returns exit code 1."""
    if getattr(args, "json", False):
        print(json.dumps({"error": code, "message": message}))
    else:
        print(f"error [{code}]: {message}", file=sys.stderr)
    return 1


def emit(args: argparse.Namespace, text: str, document: Any) -> None:
    """Print ``document`` as indented JSON with ``--json``, else ``text``."""
    if args.json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(text)


def dump(model: BaseModel) -> Any:
    return model.model_dump(mode="json")


def when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(VN).strftime("%Y-%m-%d %H:%M:%S ICT")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def with_code(reason: str, code: int | None) -> str:
    """The reason with Cotpay's code, unless the reason already names it (``... (10900): ...``)."""
    if code is None or f"({code})" in reason:
        return reason
    return f"{reason} (Cotpay code {code})"


def render_view(view: OrderView) -> str:
    pairs: list[tuple[str, str]] = [
        ("Order", f"{view.order_ref}  (workflow {view.workflow_id})"),
        ("Status", view.status.value),
        ("Amount", f"{view.amount:,} VND by {view.pay_method.value}"),
        ("Seller / buyer", f"{view.seller_id} / {view.buyer_id}"),
        ("Cotpay order", str(view.cotpay_order_id) if view.cotpay_order_id else "-"),
        ("Waiting for", view.waiting_for or "-"),
        ("Held at", when(view.held_at)),
        ("Delivered at", when(view.delivered_at)),
        ("Payout not before", f"{when(view.payout_not_before)}  (rule {view.payout_rule.value})"),
    ]
    if view.paid_out_at:
        pairs.append(("Paid out at", when(view.paid_out_at)))
    if view.refunded_at:
        pairs.append(("Refunded at", when(view.refunded_at)))
    if view.payment:
        pairs.append(("Payment", view.payment))
    if view.attention:
        reason = with_code(view.attention.reason, view.attention.code)
        pairs.append(("Attention", f"{reason} since {when(view.attention.since)}"))
    width = max(len(k) for k, _ in pairs)
    lines = [f"{k.ljust(width)}  {v}" for k, v in pairs]
    if view.timeline:
        rows = [
            [when(e.time), e.kind, e.status.value if e.status else "", e.detail]
            for e in view.timeline
        ]
        timeline = table(["TIME", "EVENT", "STATUS", "DETAIL"], rows)
        lines += ["", "Timeline", *("  " + line for line in timeline.splitlines())]
    return "\n".join(lines)
