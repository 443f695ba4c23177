"""``cotpay-escrow api <endpoint> --field value ...``: one raw signed call to the configured Cotpay.

There is one sub-command per entry of ``cotpay.models.ENDPOINTS``; its flags are the request
model's fields in kebab-case (``idOrder`` -> ``--id-order``), integers parsed as integers and
enums offered as choices. The payload is validated by the request model first (exit 2 on an
error) unless ``--skip-validation`` is given, which sends the flags as they are, e.g. to see how
Cotpay answers an invalid request. The opened answer is printed as indented JSON; the exit code
is 0 on 10100, 1 on any other code or a failed call, 2 on a usage or configuration error.

Configuration comes from the ``COTPAY_*`` environment; ``--env-file FILE`` reads ``KEY=VALUE``
lines (such as the sandbox's ``credentials.env``) which win over the environment, relative key
file paths in it being taken relative to the file's folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from cotpay.client import CotpayClient, pretty
from cotpay.codes import SUCCESS, CotpayError
from cotpay.logs import configure_logging
from cotpay.models import ENDPOINTS, Endpoint
from cotpay.settings import CotpaySettings, read_env_file

_FIELD = "field:"
_PREFIX = "COTPAY_"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Where `cotpay-escrow run` keeps the sandbox's credentials (docs/running.md).
SANDBOX_CREDENTIALS = ".data/keys/credentials.env"
NO_TOKEN = 11400


def kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def hyphenated(endpoint: str) -> str:
    """The endpoint's name as a reader guesses it: ``customerID`` -> ``customer-id``."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "-", endpoint).lower()


def _base_type(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else str
        else:
            return annotation


def _add_field(parser: argparse.ArgumentParser, name: str, info: FieldInfo) -> None:
    base = _base_type(info.annotation)
    options: dict[str, Any] = {"dest": _FIELD + name, "default": None}
    if base is int:
        options.update(type=int, metavar="INT")
    elif isinstance(base, type) and issubclass(base, Enum):
        options.update(choices=[str(m.value) for m in base])
    else:
        options.update(metavar="TEXT")
    options["help"] = f"{name}{' (required)' if info.is_required() else ''}"
    parser.add_argument(f"--{kebab(name)}", **options)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    api = subparsers.add_parser(
        "api",
        help="raw signed call to the configured Cotpay; prints the decrypted JSON",
        description="Make one signed call to Cotpay (COTPAY_* settings) and print its answer.",
    )
    endpoints = api.add_subparsers(dest="endpoint", metavar="ENDPOINT", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env-file", type=Path, help="KEY=VALUE file (e.g. credentials.env)")
    common.add_argument("--base-url", help="override COTPAY_BASE_URL")
    common.add_argument(
        "--skip-validation",
        action="store_true",
        help="send the flags without checking them against the request model",
    )
    common.add_argument(
        "--json",
        action="store_true",
        help='the answer is JSON already; errors become {"error", "message"} on stdout',
    )
    for endpoint in ENDPOINTS.values():
        alias = hyphenated(endpoint.name)
        parser = endpoints.add_parser(
            endpoint.name,
            aliases=[alias] if alias != endpoint.name else [],
            parents=[common],
            help=endpoint.summary,
            description=f"{endpoint.summary} (POST {endpoint.path}).",
        )
        for name, info in endpoint.request.model_fields.items():
            _add_field(parser, name, info)
        parser.set_defaults(func=run, api_endpoint=endpoint)


def settings_from(env_file: Path | None, base_url: str | None = None) -> CotpaySettings:
    overrides: dict[str, Any] = {}
    if env_file is not None:
        for key, value in read_env_file(env_file).items():
            if not key.upper().startswith(_PREFIX):
                continue
            field = key[len(_PREFIX) :].lower()
            if field.endswith("_file") and value and not Path(value).is_absolute():
                value = str(env_file.parent / value)
            overrides[field] = value
    if base_url:
        overrides["base_url"] = base_url
    return CotpaySettings(**overrides)


def _payload(args: argparse.Namespace) -> dict[str, Any]:
    return {
        key[len(_FIELD) :]: value
        for key, value in vars(args).items()
        if key.startswith(_FIELD) and value is not None
    }


def _field_errors(exc: ValidationError, *, flags: bool) -> str:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"])
        if flags and len(error["loc"]) == 1:
            where = f"--{kebab(where)}"
        lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)


async def _call(settings: CotpaySettings, endpoint: Endpoint, payload: dict[str, Any]) -> Any:
    async with CotpayClient(settings) as cotpay:
        return await cotpay.call(endpoint.name, payload)


def _error(args: argparse.Namespace, code: str, message: str, exit_code: int) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"error": code, "message": message}, ensure_ascii=False))
    else:
        print(f"error: {message}", file=sys.stderr)
    return exit_code


def missing_credentials(settings: CotpaySettings) -> list[str]:
    """The ``COTPAY_*`` settings that are not set, when the call cannot be made without them
    (the key files of the encrypted envelope); empty when the call can go out. Without an app
    id or token, a plain call still goes out and Cotpay answers 11400."""
    keys = [
        name
        for name, path in (
            ("COTPAY_PUBLIC_KEY_FILE", settings.public_key_file),
            ("COTPAY_PRIVATE_KEY_FILE", settings.private_key_file),
        )
        if path is None
    ]
    if settings.envelope != "encrypted" or not keys:
        return []
    ids = [
        name
        for name, value in (
            ("COTPAY_APP_ID", settings.app_id),
            ("COTPAY_ACCESS_TOKEN", settings.access_token.get_secret_value()),
        )
        if not value
    ]
    return ids + keys


def run(args: argparse.Namespace) -> int:
    endpoint: Endpoint = args.api_endpoint
    configure_logging()
    payload = _payload(args)
    if not args.skip_validation:
        try:
            payload = endpoint.request.model_validate(payload).wire()
        except ValidationError as exc:
            problems = _field_errors(exc, flags=True)
            return _error(
                args, "invalid_request", f"invalid {endpoint.name} request:\n{problems}", EXIT_USAGE
            )
    try:
        settings = settings_from(args.env_file, args.base_url)
    except OSError as exc:
        return _error(
            args, "config_error", f"cannot read {args.env_file}: {exc.strerror}", EXIT_USAGE
        )
    except ValidationError as exc:
        problems = _field_errors(exc, flags=False)
        return _error(args, "config_error", f"invalid COTPAY_* settings:\n{problems}", EXIT_USAGE)
    missing = missing_credentials(settings)
    if missing:
        return _error(
            args,
            "config_error",
            f"no Cotpay credentials ({', '.join(missing)} not set). For the sandbox of "
            f"`cotpay-escrow run`, pass --env-file {SANDBOX_CREDENTIALS}; otherwise set the "
            "COTPAY_* variables (docs/cli.md)",
            EXIT_USAGE,
        )
    try:
        answer = asyncio.run(_call(settings, endpoint, payload))
    except CotpayError as exc:
        return _error(args, "cotpay_error", str(exc), EXIT_FAILED)
    except (ValueError, OSError) as exc:
        return _error(
            args,
            "config_error",
            f"Cotpay client configuration: {exc} (for the sandbox of `cotpay-escrow run`: "
            f"--env-file {SANDBOX_CREDENTIALS})",
            EXIT_USAGE,
        )
    print(pretty(answer))
    if answer.get("code") == NO_TOKEN:
        print(
            f"hint: for the sandbox of `cotpay-escrow run`: --env-file {SANDBOX_CREDENTIALS}",
            file=sys.stderr,
        )
    return EXIT_OK if answer.get("code") == SUCCESS else EXIT_FAILED
