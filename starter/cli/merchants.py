"""``cotpay-escrow merchants add|list|disable``: the Cotpay accounts orders belong to
(docs/security.md, "Merchants").

The default merchant is ``COTPAY_*`` and needs nothing here. Another merchant is added with its
base URL, app id, access token and key pair, taken from flags or from a ``credentials.env``
(``COTPAY_*`` lines, as the sandbox writes them). ``--store sealed`` (the default) seals the
token and keys with the payload key ring (``ESCROW_CODEC_KEYS`` / ``_KEYS_FILE``) into the
store; ``--store files`` records the file paths, which every worker and gateway must then be
able to read. Then: ``cotpay-escrow keys create --merchant NAME --role shop``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from cotpay.settings import read_env_file
from runtime.codec import CodecError, CodecSettings
from runtime.merchants import read_token_file, seal_credentials
from starter.cli.actions import cli_actor, run_store_action
from starter.cli.output import dump, fail, json_flag, table, when
from store.access import AccessStore
from store.access_models import Merchant
from workflows.models import DEFAULT_MERCHANT, MERCHANT_PATTERN


def render_merchants(merchants: list[Merchant]) -> str:
    rows = [
        [
            m.name,
            m.app_id or "-",
            m.base_url or "(COTPAY_BASE_URL)",
            m.credentials,
            when(m.created_at),
            "disabled" if m.disabled_at else "",
        ]
        for m in merchants
    ]
    return table(["NAME", "APP ID", "BASE URL", "CREDENTIALS", "ADDED", ""], rows)


def _file(value: str | None) -> Path | None:
    return Path(value).expanduser().resolve() if value else None


def _add(args: argparse.Namespace) -> int:
    name: str = args.name
    if name == DEFAULT_MERCHANT or not re.match(MERCHANT_PATTERN, name):
        return fail(
            args,
            "invalid_request",
            f"a merchant name is 1-32 of [a-z0-9_-], not {DEFAULT_MERCHANT!r}",
        )
    env: dict[str, str] = {}
    env_file = _file(args.env_file)
    if env_file is not None:
        try:
            env = read_env_file(env_file)
        except OSError as exc:
            return fail(args, "invalid_request", f"cannot read {env_file}: {exc}")
    base_url = args.base_url or env.get("COTPAY_BASE_URL", "")
    app_id = args.app_id or env.get("COTPAY_APP_ID", "")
    envelope = args.envelope or env.get("COTPAY_ENVELOPE", "encrypted")
    public_file = _file(args.public_key_file or env.get("COTPAY_PUBLIC_KEY_FILE"))
    private_file = _file(args.private_key_file or env.get("COTPAY_PRIVATE_KEY_FILE"))
    token_file = _file(args.access_token_file) or (
        env_file if env.get("COTPAY_ACCESS_TOKEN") else None
    )
    if not base_url or not app_id or token_file is None:
        return fail(
            args,
            "invalid_request",
            "a merchant needs a base URL, an app id and an access token "
            "(--env-file, or --base-url, --app-id and --access-token-file)",
        )
    if envelope == "encrypted" and (public_file is None or private_file is None):
        return fail(
            args,
            "invalid_request",
            "the encrypted envelope needs --public-key-file (Cotpay's) and --private-key-file",
        )
    sealed: str | None = None
    files: dict[str, str | None] = {
        "access_token_file": None,
        "public_key_file": None,
        "private_key_file": None,
    }
    try:
        token = read_token_file(token_file)
        public = public_file.read_text(encoding="utf-8") if public_file else ""
        private = private_file.read_text(encoding="utf-8") if private_file else ""
    except OSError as exc:
        return fail(args, "invalid_request", f"cannot read a credential file: {exc}")
    if not token:
        return fail(args, "invalid_request", "the access token is empty")
    if args.store == "sealed":
        try:
            ring = CodecSettings().key_ring()
        except (CodecError, OSError) as exc:
            return fail(args, "config_error", str(exc))
        if ring is None:
            return fail(
                args,
                "config_error",
                "sealing needs the payload key ring (ESCROW_CODEC_KEYS or ESCROW_CODEC_KEYS_FILE;"
                " for `cotpay-escrow run`: <data-dir>/codec.keys), or use --store files",
            )
        secrets = {"accessToken": token, "cotpayPublicKey": public, "merchantPrivateKey": private}
        sealed = seal_credentials(ring, name, secrets)
    else:
        files = {
            "access_token_file": str(token_file),
            "public_key_file": str(public_file) if public_file else None,
            "private_key_file": str(private_file) if private_file else None,
        }

    async def action(access: AccessStore) -> Merchant:
        return await access.add_merchant(
            name,
            by=cli_actor(),
            app_id=app_id,
            base_url=base_url,
            envelope=envelope,
            sealed_credentials=sealed,
            access_token_file=files["access_token_file"],
            public_key_file=files["public_key_file"],
            private_key_file=files["private_key_file"],
        )

    return run_store_action(
        args, action, lambda m: f"Merchant {m.name} added ({m.credentials}).", dump
    )


def _list(args: argparse.Namespace) -> int:
    async def action(access: AccessStore) -> list[Merchant]:
        return await access.list_merchants()

    return run_store_action(
        args, action, render_merchants, lambda ms: {"merchants": [dump(m) for m in ms]}
    )


def _disable(args: argparse.Namespace) -> int:
    async def action(access: AccessStore) -> str:
        await access.disable_merchant(args.name, by=cli_actor())
        return str(args.name)

    return run_store_action(
        args, action, lambda name: f"Merchant {name} disabled.", lambda name: {"disabled": name}
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    merchants = subparsers.add_parser(
        "merchants",
        help="Cotpay accounts besides the default one (COTPAY_*): add, list, disable",
        description="Merchants (Cotpay accounts) in the order store; every order belongs to one.",
    )
    commands = merchants.add_subparsers(dest="merchants_command", metavar="ACTION", required=True)

    add = commands.add_parser("add", help="add a merchant with its Cotpay credentials")
    add.add_argument("name", metavar="NAME", help="1-32 of [a-z0-9_-]")
    add.add_argument("--env-file", default=None, help="COTPAY_* lines (a credentials.env)")
    add.add_argument("--base-url", default=None, help="Cotpay's base URL for this merchant")
    add.add_argument("--app-id", default=None)
    add.add_argument("--access-token-file", default=None, help="a file holding the token")
    add.add_argument("--public-key-file", default=None, help="Cotpay's public key (PEM)")
    add.add_argument("--private-key-file", default=None, help="the merchant's private key (PEM)")
    add.add_argument("--envelope", choices=["encrypted", "plain"], default=None)
    add.add_argument(
        "--store",
        choices=["sealed", "files"],
        default="sealed",
        help="sealed: encrypt the token and keys into the store (default); files: keep paths",
    )
    json_flag(add)
    add.set_defaults(func=_add)

    listing = commands.add_parser("list", help="list merchants (never their secrets)")
    json_flag(listing)
    listing.set_defaults(func=_list)

    disable = commands.add_parser("disable", help="stop a merchant's new calls and keys")
    disable.add_argument("name", metavar="NAME")
    json_flag(disable)
    disable.set_defaults(func=_disable)
