"""``StackPlan``: what a local stack runs and how its parts find each other, from the flags of
``cotpay-escrow run`` and the environment (docs/running.md).

Wiring: the worker and gateway get ``TEMPORAL_ADDRESS``, the sandbox's ``credentials.env``
(``COTPAY_*``), ``ESCROW_PUBLIC_URL`` = the gateway, so the sandbox's IPNs reach it, and one
order store, ``ESCROW_DATABASE_URL`` (default: ``<data-dir>/escrow.db``, docs/store.md).
A ``COTPAY_BASE_URL`` other than the local sandbox means production (or another) Cotpay: no
sandbox is started and ``COTPAY_*`` pass through. Likewise a ``TEMPORAL_ADDRESS`` other than the
local dev server means an existing Temporal: no dev server is started.

Payload encryption: with the local dev server, payloads are encrypted by default. Without
``ESCROW_CODEC_KEYS``/``_KEYS_FILE`` in the environment, a key ring is generated once into
``<data-dir>/codec.keys`` (mode 0600) and every part gets ``ESCROW_CODEC_KEYS_FILE``. With the
web UI on, a codec server (bearer token ``ESCROW_CODEC_TOKEN`` or a fresh random one, CORS for
the UI's origin) lets the UI show decrypted orders. ``plain_payloads`` turns encryption off; an
existing Temporal keeps whatever keys are set.

Security (docs/security.md): on a loopback host the gateway serves ``/docs`` (``ESCROW_DOCS``);
its metrics go to ``metrics_port`` (off by default), never to the gateway's port.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from runtime.codec import CodecError, KeyRing, generate_key
from runtime.safety import is_loopback
from starter.stack.processes import port_in_use
from workflows.models import PayoutRule

log = structlog.get_logger(__name__)


@dataclass
class StackPlan:
    host: str
    data_dir: Path
    payout_rule: str
    temporal_port: int
    ui_port: int | None
    sandbox_port: int
    gateway_port: int
    namespace: str
    codec_port: int = 8081
    metrics_port: int | None = None
    """The gateway's metrics port (``ESCROW_METRICS_PORT`` of the gateway only); None: off."""
    external_temporal: str | None = None
    external_cotpay: str | None = None
    codec_keys_file: Path | None = None
    codec_token: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    """Each child process logs to ``<log_dir>/<part>.log``; None: to this terminal."""
    part_args: dict[str, list[str]] = field(default_factory=dict)
    """Extra command-line flags per process part, e.g. ``{"sandbox": ["--ipn-max-delay", "10"]}``
    (the chaos harness's fast IPN retries)."""
    ready_timeout: float = 30.0
    """Seconds a process part may take to answer after each (re)start."""

    @property
    def temporal_address(self) -> str:
        return self.external_temporal or f"{self.host}:{self.temporal_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.host}:{self.sandbox_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    @property
    def metrics_url(self) -> str | None:
        if self.metrics_port is None:
            return None
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def encrypted(self) -> bool:
        return bool(self.env.get("ESCROW_CODEC_KEYS") or self.env.get("ESCROW_CODEC_KEYS_FILE"))

    @property
    def codec_server(self) -> bool:
        """A codec server for the embedded UI: local dev server, UI on, payloads encrypted."""
        return self.external_temporal is None and self.ui_port is not None and self.encrypted

    @property
    def codec_url(self) -> str:
        return f"http://{self.host}:{self.codec_port}"

    @property
    def ui_origin(self) -> str:
        return f"http://{self.host}:{self.ui_port}"


def _same_endpoint(url: str, host: str, port: int) -> bool:
    parts = urlsplit(url if "://" in url else f"//{url}")
    loopback = {"127.0.0.1", "localhost", "::1", host}
    return parts.hostname in loopback and (parts.port or 80) == port


def plan_stack(
    environ: Mapping[str, str],
    *,
    data_dir: Path,
    host: str = "127.0.0.1",
    payout_rule: str | None = None,
    temporal_port: int = 7233,
    ui_port: int | None = 8233,
    sandbox_port: int = 8090,
    gateway_port: int = 8000,
    codec_port: int = 8081,
    metrics_port: int | None = None,
    plain_payloads: bool = False,
    log_dir: Path | None = None,
) -> StackPlan:
    """The plan for these ports and this environment (``ui_port=None``: headless)."""
    data_dir = data_dir.expanduser().resolve()
    rule = payout_rule or environ.get("ESCROW_PAYOUT_RULE") or PayoutRule.T1_1600.value
    plan = StackPlan(
        host=host,
        data_dir=data_dir,
        payout_rule=PayoutRule(rule).value,
        temporal_port=temporal_port,
        ui_port=ui_port,
        sandbox_port=sandbox_port,
        gateway_port=gateway_port,
        namespace=environ.get("TEMPORAL_NAMESPACE", "default"),
        metrics_port=metrics_port,
        log_dir=log_dir,
    )
    temporal = environ.get("TEMPORAL_ADDRESS")
    if temporal and not _same_endpoint(temporal, host, temporal_port):
        plan.external_temporal = temporal
    cotpay = environ.get("COTPAY_BASE_URL")
    if cotpay and not _same_endpoint(cotpay, host, sandbox_port):
        plan.external_cotpay = cotpay
    env = dict(environ)
    env.update(
        {
            "TEMPORAL_ADDRESS": plan.temporal_address,
            "TEMPORAL_NAMESPACE": plan.namespace,
            "ESCROW_PUBLIC_URL": environ.get("ESCROW_PUBLIC_URL") or plan.gateway_url,
            "ESCROW_GATEWAY_HOST": plan.host,
            "ESCROW_GATEWAY_PORT": str(plan.gateway_port),
            "ESCROW_PAYOUT_RULE": plan.payout_rule,
            # The order store (webhooks and orders) of this stack: beside its other data.
            "ESCROW_DATABASE_URL": environ.get("ESCROW_DATABASE_URL")
            or f"sqlite+aiosqlite:///{data_dir / 'escrow.db'}",
        }
    )
    # One metrics port per process: the gateway's comes from ``metrics_port`` (local.py); the
    # worker keeps none unless its own environment sets one.
    env.pop("ESCROW_METRICS_PORT", None)
    # The order store (API keys and the audit trail too) lives in the data dir.
    env.setdefault("ESCROW_DATABASE_URL", f"sqlite+aiosqlite:///{data_dir / 'escrow.db'}")
    if is_loopback(plan.host):
        env.setdefault("ESCROW_DOCS", "true")  # a development stack on this machine only
    plan.env = env
    plan.codec_port = codec_port
    _plan_codec(plan, environ, plain=plain_payloads)
    return plan


def _plan_codec(plan: StackPlan, environ: Mapping[str, str], *, plain: bool) -> None:
    if plan.external_temporal is not None:
        return
    if plain:
        for key in ("ESCROW_CODEC_KEYS", "ESCROW_CODEC_KEYS_FILE"):
            plan.env.pop(key, None)
        return
    if not (environ.get("ESCROW_CODEC_KEYS") or environ.get("ESCROW_CODEC_KEYS_FILE")):
        plan.codec_keys_file = plan.data_dir / "codec.keys"
        plan.env["ESCROW_CODEC_KEYS_FILE"] = str(plan.codec_keys_file)
    if plan.codec_server:
        plan.codec_token = environ.get("ESCROW_CODEC_TOKEN") or secrets.token_urlsafe(24)


def ensure_key_file(path: Path) -> None:
    """Write a one-key ring to ``path`` (mode 0600) unless it exists; check it either way."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        key_id = "local-" + time.strftime("%Y%m%d", time.gmtime())
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(
                "# Payload key ring of `cotpay-escrow run` (first key encodes, all decode).\n"
                "# Keep it: orders in temporal.db cannot be read without it.\n"
                f"{key_id}:{generate_key()}\n"
            )
        log.info("codec_key_generated", path=str(path), key_id=key_id)
    try:
        KeyRing.parse(path.read_text(encoding="utf-8"))
    except (CodecError, OSError) as exc:
        raise RuntimeError(f"the payload key ring {path} is unusable: {exc}") from None


def busy_ports(plan: StackPlan) -> list[str]:
    """The ports the plan needs that something else holds, named (``gateway port 8000``)."""
    wanted: list[tuple[str, int]] = [("gateway", plan.gateway_port)]
    if plan.external_temporal is None:
        wanted.append(("Temporal gRPC", plan.temporal_port))
        if plan.ui_port is not None:
            wanted.append(("Temporal UI", plan.ui_port))
    if plan.external_cotpay is None:
        wanted.append(("sandbox", plan.sandbox_port))
    if plan.codec_server:
        wanted.append(("codec server", plan.codec_port))
    if plan.metrics_port is not None:
        wanted.append(("metrics", plan.metrics_port))
    return [f"{name} port {port}" for name, port in wanted if port_in_use(plan.host, port)]
