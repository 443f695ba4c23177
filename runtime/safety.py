"""Fail closed: the gateway, the worker and the codec server refuse to run unsafe
(docs/security.md, "Fail closed").

A process runs in **production mode** when ``ESCROW_ENV=production``, when it binds to an
address other than loopback, or when ``ESCROW_PUBLIC_URL`` (where Cotpay reaches the gateway)
names a host other than loopback. In production mode it refuses to start with a development
default, a placeholder (``change-me...``) or an empty secret, and names each one:

- ``ESCROW_IPN_SECRET``: not the public development default, at least 32 bytes;
- ``ESCROW_API_KEYS``: no ``dev-api-key``, no placeholder, each key at least 24 characters
  (empty is allowed: keys then come only from ``cotpay-escrow keys create``);
- ``ESCROW_CODEC_TOKEN``: set, not a placeholder, at least 24 characters;
- ``COTPAY_ACCESS_TOKEN`` (worker): set, not a placeholder.

``make run`` (loopback, no ``ESCROW_ENV``) keeps every development default.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from runtime.settings import EscrowSettings

DEV_IPN_SECRET = "dev-ipn-secret-change-me"  # noqa: S105 - the public default we refuse
DEV_API_KEY = "dev-api-key"
MIN_IPN_SECRET_BYTES = 32
MIN_TOKEN_CHARS = 24
PRODUCTION = "production"
_PLACEHOLDER = "change-me"
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class UnsafeConfiguration(RuntimeError):
    """The process would run with a development default or an empty secret."""

    def __init__(self, component: str, reasons: list[str], problems: list[str]) -> None:
        self.component = component
        self.reasons = reasons
        self.problems = problems
        why = "; ".join(reasons)
        super().__init__(
            f"{component} refuses to start in production mode ({why}): " + "; ".join(problems)
        )


def is_loopback(host: str | None) -> bool:
    """True for ``127.0.0.0/8``, ``::1`` and ``localhost``; False for anything else, including
    ``0.0.0.0`` and ``::`` (every interface)."""
    if not host:
        return False
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def url_host(url: str) -> str | None:
    return urlsplit(url if "://" in url else f"//{url}").hostname


def is_production(env: str) -> bool:
    """``ESCROW_ENV`` names production (any case, spaces ignored): the one meaning of the
    setting for fail-closed startup and for the outbound rules of webhooks."""
    return env.strip().lower() == PRODUCTION


def production_reasons(
    env: str, *, bind_hosts: Iterable[str | None] = (), public_url: str | None = None
) -> list[str]:
    """Why production checks apply to this process ([] in development)."""
    reasons: list[str] = []
    if is_production(env):
        reasons.append("ESCROW_ENV=production")
    for host in bind_hosts:
        if host is not None and not is_loopback(host):
            reasons.append(f"binds to {host}")
    if public_url is not None:
        host = url_host(public_url)
        if not is_loopback(host):
            reasons.append(f"ESCROW_PUBLIC_URL is on {host or 'no host'}")
    return reasons


def _placeholder(value: str) -> bool:
    return _PLACEHOLDER in value.lower()


def ipn_secret_problems(secret: str) -> list[str]:
    if not secret:
        return ["ESCROW_IPN_SECRET is empty"]
    if secret == DEV_IPN_SECRET:
        return ["ESCROW_IPN_SECRET is the development default (public in the repository)"]
    if _placeholder(secret):
        return ["ESCROW_IPN_SECRET is a placeholder (change-me...)"]
    if len(secret.encode("utf-8")) < MIN_IPN_SECRET_BYTES:
        return [f"ESCROW_IPN_SECRET is shorter than {MIN_IPN_SECRET_BYTES} bytes"]
    return []


def api_key_problems(keys: Iterable[str]) -> list[str]:
    problems: list[str] = []
    for position, key in enumerate(keys, start=1):
        secret = key.split(":", 1)[0]  # KEY[:ROLE[:MERCHANT]]
        if secret == DEV_API_KEY:
            problems.append(f"ESCROW_API_KEYS key {position} is the development default")
        elif _placeholder(secret):
            problems.append(f"ESCROW_API_KEYS key {position} is a placeholder (change-me...)")
        elif len(secret) < MIN_TOKEN_CHARS:
            problems.append(
                f"ESCROW_API_KEYS key {position} is shorter than {MIN_TOKEN_CHARS} characters"
            )
    return problems


def codec_token_problems(token: str | None) -> list[str]:
    if not token:
        return ["ESCROW_CODEC_TOKEN is empty"]
    if _placeholder(token):
        return ["ESCROW_CODEC_TOKEN is a placeholder (change-me...)"]
    if len(token) < MIN_TOKEN_CHARS:
        return [f"ESCROW_CODEC_TOKEN is shorter than {MIN_TOKEN_CHARS} characters"]
    return []


def cotpay_token_problems(token: str) -> list[str]:
    if not token:
        return ["COTPAY_ACCESS_TOKEN is empty"]
    if _placeholder(token):
        return ["COTPAY_ACCESS_TOKEN is a placeholder (change-me...)"]
    return []


def refuse_unsafe(component: str, reasons: list[str], problems: list[str]) -> None:
    """Raise ``UnsafeConfiguration`` when production checks apply and anything is wrong."""
    if reasons and problems:
        raise UnsafeConfiguration(component, reasons, problems)


def check_gateway(escrow: EscrowSettings, host: str) -> None:
    """Before the gateway serves on ``host``: IPN secret and bootstrap API keys."""
    reasons = production_reasons(escrow.env, bind_hosts=[host], public_url=escrow.public_url)
    problems = ipn_secret_problems(escrow.ipn_secret.get_secret_value())
    problems += api_key_problems(escrow.api_key_list())
    refuse_unsafe("gateway", reasons, problems)


def check_worker(escrow: EscrowSettings, cotpay_access_token: str) -> None:
    """Before the worker polls: the IPN secret it signs URLs with and the Cotpay token."""
    reasons = production_reasons(escrow.env, public_url=escrow.public_url)
    problems = ipn_secret_problems(escrow.ipn_secret.get_secret_value())
    problems += cotpay_token_problems(cotpay_access_token)
    refuse_unsafe("worker", reasons, problems)


def check_codec_server(env: str, host: str, token: str | None) -> None:
    """Before the codec server serves on ``host``: its bearer token."""
    refuse_unsafe(
        "codec server", production_reasons(env, bind_hosts=[host]), codec_token_problems(token)
    )
