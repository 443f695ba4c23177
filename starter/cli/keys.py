"""``cotpay-escrow keys create|list|rotate|revoke``: the gateway's API keys (docs/security.md).

Keys live in the order store (``ESCROW_DATABASE_URL``) as a SHA-256 hash only: ``create`` and
``rotate`` print the key once, and nobody can show it again. Each key belongs to one merchant and
has one role: ``viewer`` reads orders, reports and exports; ``shop`` also starts and drives its
merchant's orders and manages its webhook endpoints; ``operator`` also retries, releases,
refunds and cancels. Every change is written to the audit trail as ``cli:<login name>``.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from starter.cli.actions import cli_actor, run_store_action
from starter.cli.output import dump, json_flag, table, when
from store.access import AccessStore
from store.access_models import DEFAULT_MERCHANT, ApiKey, CreatedKey, Role

_DURATION = re.compile(r"^(?P<n>\d+)(?P<unit>[smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    """``90d``, ``24h``, ``30m``, ``45s`` or seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 90d, 24h, 30m)")
    return timedelta(seconds=int(match["n"]) * _UNITS[match["unit"]])


def render_created(created: CreatedKey) -> str:
    record = created.api_key
    lines = [
        f"API key {record.key_id} {record.name!r}: {record.role.value} of merchant "
        f"{record.merchant}"
        + (f", expires {when(record.expires_at)}" if record.expires_at else ""),
    ]
    if record.replaces:
        lines.append(f"It replaces {record.replaces}.")
    lines += [
        "The key (shown this once; store it now, it cannot be shown again):",
        "",
        f"  {created.key}",
        "",
        "Use it as: Authorization: Bearer <key>",
    ]
    return "\n".join(lines)


def created_json(created: CreatedKey) -> dict[str, Any]:
    return {"key": created.key, **dump(created.api_key)}


def render_keys(keys: list[ApiKey]) -> str:
    if not keys:
        return "No API keys."
    now = datetime.now(UTC)
    rows = [
        [
            key.key_id,
            key.name,
            key.merchant,
            key.role.value,
            when(key.created_at),
            when(key.last_used_at),
            when(key.expires_at),
            "yes" if key.usable(now) else ("revoked" if key.revoked_at else "expired"),
        ]
        for key in keys
    ]
    headers = ["KEY ID", "NAME", "MERCHANT", "ROLE", "CREATED", "LAST USED", "EXPIRES", "ACTIVE"]
    return table(headers, rows)


def _create(args: argparse.Namespace) -> int:
    role = Role(args.role)
    now = datetime.now(UTC)
    name = args.name or f"{args.merchant}-{role.value}-{now:%Y%m%d-%H%M%S}"
    expires = now + args.expires_in if args.expires_in else None

    async def action(access: AccessStore) -> CreatedKey:
        return await access.create_key(
            merchant=args.merchant, role=role, name=name, by=cli_actor(), expires_at=expires
        )

    return run_store_action(args, action, render_created, created_json)


def _list(args: argparse.Namespace) -> int:
    async def action(access: AccessStore) -> list[ApiKey]:
        return await access.list_keys(merchant=args.merchant, include_revoked=args.all)

    return run_store_action(
        args, action, render_keys, lambda keys: {"keys": [dump(k) for k in keys]}
    )


def _rotate(args: argparse.Namespace) -> int:
    async def action(access: AccessStore) -> CreatedKey:
        return await access.rotate_key(args.key_id, by=cli_actor(), grace=args.grace)

    return run_store_action(args, action, render_created, created_json)


def _revoke(args: argparse.Namespace) -> int:
    async def action(access: AccessStore) -> ApiKey:
        return await access.revoke_key(args.key_id, by=cli_actor())

    def render(key: ApiKey) -> str:
        return f"API key {key.key_id} {key.name!r} revoked at {when(key.revoked_at)}."

    return run_store_action(args, action, render, dump)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = subparsers.add_parser(
        "keys",
        help="API keys of the gateway: create, list, rotate, revoke (roles shop, viewer, operator)",
        description="API keys with a role and a merchant, stored hashed in the order store "
        "(ESCROW_DATABASE_URL). The key is shown once.",
    )
    commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    create = commands.add_parser("create", help="create a key and print it once")
    create.add_argument(
        "--merchant", default=DEFAULT_MERCHANT, help="its merchant (default: default)"
    )
    create.add_argument(
        "--role",
        required=True,
        choices=[r.value for r in Role],
        help="viewer: reads; shop: also starts and drives orders, webhooks; operator: also "
        "retry, release, refund, cancel",
    )
    create.add_argument("--name", default=None, help="who holds it (shown in the audit trail)")
    create.add_argument(
        "--expires-in", type=duration, default=None, help="e.g. 90d (default: never)"
    )
    json_flag(create)
    create.set_defaults(func=_create)

    listing = commands.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--merchant", default=None, help="only this merchant's keys")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    json_flag(listing)
    listing.set_defaults(func=_list)

    rotate = commands.add_parser(
        "rotate", help="replace a key by a new one with the same name, merchant and role"
    )
    rotate.add_argument("key_id", metavar="KEY_ID")
    rotate.add_argument(
        "--grace",
        type=duration,
        default=timedelta(0),
        help="keep the old key working this long (e.g. 24h; default: it stops now)",
    )
    json_flag(rotate)
    rotate.set_defaults(func=_rotate)

    revoke = commands.add_parser("revoke", help="stop a key at once")
    revoke.add_argument("key_id", metavar="KEY_ID")
    json_flag(revoke)
    revoke.set_defaults(func=_revoke)
