"""``cotpay-escrow webhooks add|list|enable|disable|remove|rotate-secret|deliveries|resend|
dispatch``: manage webhook endpoints and run the dispatcher (docs/webhooks.md, docs/cli.md).

The commands work on the order store directly (``ESCROW_DATABASE_URL``; secrets sealed with
``ESCROW_CODEC_KEYS``), like the gateway's ``/v1/webhook-endpoints``. ``dispatch`` runs the
dispatcher alone (the worker runs one too unless ``ESCROW_WEBHOOK_DISPATCHER=false``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from cotpay.logs import configure_logging
from runtime.codec import CodecError
from runtime.metrics import MetricsSettings, start_service_metrics_server
from runtime.settings import EscrowSettings
from starter.cli.output import dump, emit, fail, json_flag, table, when
from store.errors import StoreUnavailable
from webhooks.dispatcher import Dispatcher
from webhooks.models import (
    Delivery,
    DeliveryList,
    DeliveryStatus,
    Endpoint,
    EndpointCreate,
    EndpointCreated,
    EndpointUpdate,
    SecretRotated,
)
from webhooks.service import WebhookError, WebhookService

_T = TypeVar("_T")


def _call(
    args: argparse.Namespace,
    action: Callable[[WebhookService], Awaitable[_T]],
    render: Callable[[_T], str],
    to_json: Callable[[_T], Any],
) -> int:
    async def run() -> _T:
        service = WebhookService.open(args.database_url)
        try:
            return await action(service)
        finally:
            await service.close()

    try:
        result = asyncio.run(run())
    except WebhookError as exc:
        return fail(args, exc.code, exc.message)
    except StoreUnavailable as exc:
        return fail(args, "store_unavailable", str(exc))
    except (CodecError, ValueError) as exc:
        return fail(args, "config_error", str(exc))
    emit(args, render(result), to_json(result))
    return 0


def _types(endpoint: Endpoint) -> str:
    return ",".join(endpoint.event_types)


def _state(endpoint: Endpoint) -> str:
    if endpoint.enabled:
        return "enabled" if not endpoint.consecutive_failures else "failing"
    return f"disabled ({endpoint.disabled_reason.value if endpoint.disabled_reason else '?'})"


def render_endpoint(endpoint: Endpoint) -> str:
    lines = [
        f"Endpoint     {endpoint.id}",
        f"URL          {endpoint.url}",
        f"Events       {_types(endpoint)}",
        f"State        {_state(endpoint)}",
    ]
    if endpoint.description:
        lines.append(f"Description  {endpoint.description}")
    if endpoint.consecutive_failures:
        lines.append(
            f"Failing      {endpoint.consecutive_failures} attempt(s) in a row since"
            f" {when(endpoint.failing_since)}"
        )
    if endpoint.previous_secret_expires_at:
        lines.append(f"Old secret   signs until {when(endpoint.previous_secret_expires_at)}")
    return "\n".join(lines)


def render_created(created: EndpointCreated) -> str:
    return (
        render_endpoint(created)
        + f"\nSecret       {created.secret}\n"
        + "             (shown only now: verify every request with it, docs/webhooks.md)"
    )


def render_list(endpoints: list[Endpoint]) -> str:
    if not endpoints:
        return "No webhook endpoints."
    rows = [[e.id, _state(e), _types(e), e.url] for e in endpoints]
    return table(["ID", "STATE", "EVENTS", "URL"], rows)


def render_rotated(rotated: SecretRotated) -> str:
    until = rotated.previous_secret_expires_at
    return f"New secret   {rotated.secret}  (shown only now)\n" + (
        f"Old secret   keeps signing until {when(until)}"
        if until
        else "Old secret   no longer signs"
    )


def render_deliveries(page: DeliveryList) -> str:
    if not page.deliveries:
        return "No deliveries."
    rows = [
        [
            str(d.id),
            d.type,
            d.order_ref,
            d.status.value,
            str(d.attempts),
            str(d.last_status_code or "-"),
            f"{d.last_latency_ms} ms" if d.last_latency_ms is not None else "-",
            when(d.next_attempt_at) if d.next_attempt_at else "-",
            (d.last_error or "")[:60],
        ]
        for d in page.deliveries
    ]
    text = table(
        ["ID", "TYPE", "ORDER", "STATUS", "TRIES", "CODE", "LATENCY", "NEXT ATTEMPT", "ERROR"],
        rows,
    )
    if page.next_before is not None:
        text += f"\n(older: --before {page.next_before})"
    return text


def render_delivery(delivery: Delivery) -> str:
    return f"Delivery {delivery.id} ({delivery.type}, {delivery.order_ref}) queued to send now"


def _add(args: argparse.Namespace) -> int:
    types = [t.strip() for value in args.events or [] for t in value.split(",") if t.strip()]
    body = EndpointCreate(url=args.url, event_types=types or None, description=args.description)
    return _call(args, lambda s: s.create(body), render_created, dump)


def _list(args: argparse.Namespace) -> int:
    return _call(
        args,
        lambda s: s.list_endpoints(),
        render_list,
        lambda rows: {"endpoints": [dump(e) for e in rows]},
    )


def _enable(enabled: bool) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        body = EndpointUpdate(enabled=enabled)
        return _call(args, lambda s: s.update(args.endpoint, body), render_endpoint, dump)

    return command


def _remove(args: argparse.Namespace) -> int:
    async def action(service: WebhookService) -> str:
        await service.delete(args.endpoint)
        return args.endpoint  # type: ignore[no-any-return]

    return _call(args, action, lambda e: f"Removed {e}", lambda e: {"removed": e})


def _rotate(args: argparse.Namespace) -> int:
    overlap = timedelta(hours=args.overlap_hours) if args.overlap_hours is not None else None
    return _call(
        args, lambda s: s.rotate_secret(args.endpoint, overlap=overlap), render_rotated, dump
    )


def _deliveries(args: argparse.Namespace) -> int:
    status = DeliveryStatus(args.status) if args.status else None
    return _call(
        args,
        lambda s: s.deliveries(
            args.endpoint,
            status=status,
            order_ref=args.order,
            before=args.before,
            limit=args.limit,
        ),
        render_deliveries,
        dump,
    )


def _resend(args: argparse.Namespace) -> int:
    if args.all_failed:
        return _call(
            args,
            lambda s: s.resend_failed(args.endpoint),
            lambda ids: f"{len(ids)} failed deliver{'y' if len(ids) == 1 else 'ies'} queued again",
            lambda ids: {"resent": ids},
        )
    if args.delivery is None:
        return fail(args, "invalid_request", "give a DELIVERY id or --all-failed")
    return _call(args, lambda s: s.resend(args.endpoint, args.delivery), render_delivery, dump)


def _dispatch(args: argparse.Namespace) -> int:
    configure_logging(EscrowSettings().log_format)

    async def run() -> None:
        dispatcher = Dispatcher.from_env()
        if args.once:
            try:
                await dispatcher.tick()
                await dispatcher.drain()
            finally:
                await dispatcher.shutdown()
                await dispatcher.db.close()
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        start_service_metrics_server(MetricsSettings())
        try:
            await dispatcher.run(stop)
        finally:
            await dispatcher.db.close()

    try:
        asyncio.run(run())
    except (StoreUnavailable, CodecError, ValueError) as exc:
        return fail(
            args,
            "config_error" if not isinstance(exc, StoreUnavailable) else "store_unavailable",
            str(exc),
        )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hooks = subparsers.add_parser(
        "webhooks",
        help="webhook endpoints of the shop: add, list, disable, rotate the secret, resend",
        description="Manage webhook endpoints in the order store (ESCROW_DATABASE_URL) and run"
        " the dispatcher. See docs/webhooks.md.",
    )
    sub = hooks.add_subparsers(dest="webhooks_command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, func: Callable[[argparse.Namespace], int]) -> Any:
        parser = sub.add_parser(name, help=help_text, description=help_text)
        parser.add_argument(
            "--database-url", default=None, help="the order store (default: ESCROW_DATABASE_URL)"
        )
        json_flag(parser)
        parser.set_defaults(func=func)
        return parser

    add = command("add", "register an endpoint; prints its signing secret once", _add)
    add.add_argument("url", help="https URL (http to localhost in development)")
    add.add_argument(
        "--events",
        action="append",
        metavar="TYPE[,TYPE]",
        help="event types to receive, e.g. order.held,order.paid_out (default: all)",
    )
    add.add_argument("--description", default="", help="a note for people")

    command("list", "list the endpoints", _list)
    for name, enabled in (("enable", True), ("disable", False)):
        parser = command(name, f"{name} an endpoint", _enable(enabled))
        parser.add_argument("endpoint", help="endpoint id (we_...)")
    remove = command("remove", "remove an endpoint and its deliveries", _remove)
    remove.add_argument("endpoint")

    rotate = command(
        "rotate-secret",
        "make a new signing secret; the old one keeps signing for 24 h (prints the new one)",
        _rotate,
    )
    rotate.add_argument("endpoint")
    rotate.add_argument(
        "--overlap-hours",
        type=float,
        default=None,
        help="hours the old secret keeps signing (default 24; 0 for a leaked secret)",
    )

    deliveries = command(
        "deliveries", "an endpoint's deliveries with their last attempt, newest first", _deliveries
    )
    deliveries.add_argument("endpoint")
    deliveries.add_argument("--status", choices=[s.value for s in DeliveryStatus])
    deliveries.add_argument("--order", help="only this orderRef")
    deliveries.add_argument("--before", type=int, help="page: deliveries older than this id")
    deliveries.add_argument("--limit", type=int, default=50)

    resend = command(
        "resend", "send a delivery again now (with its order's earlier failed ones)", _resend
    )
    resend.add_argument("endpoint")
    resend.add_argument("delivery", type=int, nargs="?")
    resend.add_argument(
        "--all-failed", action="store_true", help="queue every failed delivery again, in order"
    )

    dispatch = sub.add_parser(
        "dispatch",
        help="run the webhook dispatcher until SIGINT/SIGTERM",
        description="Send webhooks from the order store (ESCROW_DATABASE_URL, ESCROW_WEBHOOK_*)."
        " Several dispatchers may run at once.",
    )
    dispatch.add_argument("--once", action="store_true", help="one pass, then exit")
    dispatch.set_defaults(func=_dispatch, json=False)
