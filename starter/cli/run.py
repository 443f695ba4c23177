"""``cotpay-escrow run``: the whole embedded stack on this machine, wired with no configuration.

Starts, in order, the Temporal dev server (SQLite file in the data dir, UI), the Cotpay sandbox
(keys in ``<data-dir>/keys``), the worker and the HTTP gateway, each as a child process; prints
where everything is; stops all of it on Ctrl-C / SIGTERM, or when any part dies (exit code 1).

Wiring: the worker and gateway get ``TEMPORAL_ADDRESS``, the sandbox's ``credentials.env``
(``COTPAY_*``), and ``ESCROW_PUBLIC_URL`` = the gateway, so the sandbox's IPNs reach it.
A ``COTPAY_BASE_URL`` other than the local sandbox means production (or another) Cotpay: no
sandbox is started and ``COTPAY_*`` pass through. Likewise a ``TEMPORAL_ADDRESS`` other than the
local dev server means an existing Temporal: no dev server is started.

Payload encryption (docs/running.md): with the local dev server, payloads are encrypted by
default. Without ``ESCROW_CODEC_KEYS``/``_KEYS_FILE`` in the environment, a key ring is generated
once into ``<data-dir>/codec.keys`` (mode 0600) and every part gets ``ESCROW_CODEC_KEYS_FILE``.
With the web UI on, a codec server child (``cotpay-escrow codec-server``, bearer token
``ESCROW_CODEC_TOKEN`` or a fresh random one, CORS for the UI's origin) is started first and the
dev server's UI is pointed at it with ``--ui-codec-endpoint``, so the UI shows decrypted orders.
``--plain-payloads`` turns encryption off; an existing Temporal keeps whatever keys are set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import structlog

from cotpay.logs import configure_logging
from cotpay.settings import read_env_file
from runtime.codec import CodecError, KeyRing, generate_key
from runtime.codec_server import ui_codec_endpoint
from starter.devserver import DevServer
from starter.processes import ChildProcess, port_in_use
from workflows.models import PayoutRule

log = structlog.get_logger(__name__)

DEFAULT_API_KEY = "dev-api-key"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


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
    external_temporal: str | None = None
    external_cotpay: str | None = None
    codec_keys_file: Path | None = None
    codec_token: str | None = None
    env: dict[str, str] = field(default_factory=dict)

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


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the whole stack here: Temporal dev server, sandbox, worker, gateway",
        description=(
            "Run the Temporal dev server, the Cotpay sandbox, the worker and the HTTP gateway, "
            "wired to each other. Ctrl-C stops everything."
        ),
    )
    parser.add_argument("--data-dir", type=Path, default=Path(".data"), help="default: .data")
    parser.add_argument(
        "--payout-rule",
        choices=[r.value for r in PayoutRule],
        default=None,
        help="payout rule of the sandbox and the worker "
        "(default: ESCROW_PAYOUT_RULE or t1-1600; 'immediate' for demos)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address every part binds to")
    parser.add_argument("--temporal-port", type=int, default=7233)
    parser.add_argument("--ui-port", type=int, default=8233)
    parser.add_argument("--headless", action="store_true", help="no Temporal web UI")
    parser.add_argument("--sandbox-port", type=int, default=8090)
    parser.add_argument("--gateway-port", type=int, default=8000)
    parser.add_argument(
        "--codec-port", type=int, default=8081, help="codec server for the web UI (default 8081)"
    )
    parser.add_argument(
        "--plain-payloads",
        action="store_true",
        help="do not encrypt payloads (default with the local dev server: a key ring generated "
        "once into <data-dir>/codec.keys)",
    )
    parser.set_defaults(func=_main)


def _same_endpoint(url: str, host: str, port: int) -> bool:
    parts = urlsplit(url if "://" in url else f"//{url}")
    loopback = {"127.0.0.1", "localhost", "::1", host}
    return parts.hostname in loopback and (parts.port or 80) == port


def plan_from(args: argparse.Namespace, environ: dict[str, str]) -> StackPlan:
    data_dir: Path = args.data_dir.expanduser().resolve()
    rule = args.payout_rule or environ.get("ESCROW_PAYOUT_RULE") or PayoutRule.T1_1600.value
    plan = StackPlan(
        host=args.host,
        data_dir=data_dir,
        payout_rule=PayoutRule(rule).value,
        temporal_port=args.temporal_port,
        ui_port=None if args.headless else args.ui_port,
        sandbox_port=args.sandbox_port,
        gateway_port=args.gateway_port,
        namespace=environ.get("TEMPORAL_NAMESPACE", "default"),
    )
    temporal = environ.get("TEMPORAL_ADDRESS")
    if temporal and not _same_endpoint(temporal, args.host, args.temporal_port):
        plan.external_temporal = temporal
    cotpay = environ.get("COTPAY_BASE_URL")
    if cotpay and not _same_endpoint(cotpay, args.host, args.sandbox_port):
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
        }
    )
    plan.env = env
    plan.codec_port = args.codec_port
    _plan_codec(plan, environ, plain=args.plain_payloads)
    return plan


def _plan_codec(plan: StackPlan, environ: dict[str, str], *, plain: bool) -> None:
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


def _busy_ports(plan: StackPlan) -> list[str]:
    wanted: list[tuple[str, int]] = [("gateway", plan.gateway_port)]
    if plan.external_temporal is None:
        wanted.append(("Temporal gRPC", plan.temporal_port))
        if plan.ui_port is not None:
            wanted.append(("Temporal UI", plan.ui_port))
    if plan.external_cotpay is None:
        wanted.append(("sandbox", plan.sandbox_port))
    if plan.codec_server:
        wanted.append(("codec server", plan.codec_port))
    return [f"{name} port {port}" for name, port in wanted if port_in_use(plan.host, port)]


async def _wait_http(child: ChildProcess, url: str, within: float) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if child.returncode is not None:
                raise RuntimeError(f"{child.name} exited with code {child.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code < 500:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{child.name} did not answer on {url} within {within:.0f}s")


async def _wait_fresh(child: ChildProcess, path: Path, since: float, within: float) -> None:
    """Until ``path`` was (re)written after ``since`` (the sandbox rewrites it on every start)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if child.returncode is not None:
            raise RuntimeError(f"{child.name} exited with code {child.returncode}")
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_mtime >= since:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.name} did not write {path} within {within:.0f}s")


class Stack:
    """The running parts, in start order; stopped in reverse order."""

    def __init__(self, plan: StackPlan) -> None:
        self.plan = plan
        self.temporal: DevServer | None = None
        self.children: list[ChildProcess] = []

    def _python(self, name: str, *args: str, env: dict[str, str] | None = None) -> ChildProcess:
        child = ChildProcess(name, [sys.executable, *args], env={**self.plan.env, **(env or {})})
        self.children.append(child)
        return child

    async def _start_codec_server(self) -> str:
        """The codec server child; returns the endpoint to give the embedded UI."""
        plan = self.plan
        assert plan.codec_token is not None
        codec = self._python(
            "codec-server",
            "-m",
            "starter.cli",
            "codec-server",
            "--host",
            plan.host,
            "--port",
            str(plan.codec_port),
            env={
                "ESCROW_CODEC_TOKEN": plan.codec_token,
                "ESCROW_CODEC_CORS_ORIGIN": plan.ui_origin,
            },
        )
        await codec.start()
        await _wait_http(codec, f"{plan.codec_url}/healthz", READY_TIMEOUT_S)
        return ui_codec_endpoint(plan.codec_url, plan.codec_token)

    async def start(self) -> None:
        plan = self.plan
        plan.data_dir.mkdir(parents=True, exist_ok=True)
        if plan.codec_keys_file is not None:
            ensure_key_file(plan.codec_keys_file)
        if plan.external_temporal is None:
            codec_endpoint = await self._start_codec_server() if plan.codec_server else None
            self.temporal = DevServer(
                plan.data_dir / "temporal.db",
                port=plan.temporal_port,
                ui_port=plan.ui_port,
                namespace=plan.namespace,
                ip=plan.host,
                log_file=plan.data_dir / "temporal.log",
                ui_codec_endpoint=codec_endpoint,
            )
            await self.temporal.start(READY_TIMEOUT_S)
        if plan.external_cotpay is None:
            sandbox = self._python(
                "sandbox",
                "-m",
                "starter.cli",
                "sandbox",
                "--host",
                plan.host,
                "--port",
                str(plan.sandbox_port),
                "--keys-dir",
                str(plan.keys_dir),
                "--payout-rule",
                plan.payout_rule,
                "--db",
                str(plan.data_dir / "sandbox.db"),
            )
            started = time.time()
            await sandbox.start()
            await _wait_http(sandbox, f"{plan.sandbox_url}/sandbox/health", READY_TIMEOUT_S)
            credentials = plan.keys_dir / "credentials.env"
            await _wait_fresh(sandbox, credentials, started, READY_TIMEOUT_S)
            plan.env.update(read_env_file(credentials))
            plan.env["COTPAY_BASE_URL"] = plan.sandbox_url
        worker = self._python("worker", "-m", "worker")
        await worker.start()
        gateway = self._python("gateway", "-m", "starter.cli", "gateway")
        await gateway.start()
        await _wait_http(gateway, f"{plan.gateway_url}/healthz", READY_TIMEOUT_S)
        if worker.returncode is not None:
            raise RuntimeError(f"worker exited with code {worker.returncode}")

    async def supervise(self, stop: asyncio.Event) -> int:
        """Until ``stop`` is set (0) or any part exits (1)."""
        waits: dict[asyncio.Task[int], str] = {
            asyncio.create_task(child.wait()): child.name for child in self.children
        }
        if self.temporal is not None:
            waits[asyncio.create_task(self.temporal.child.wait())] = "temporal"
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*waits, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in [*waits, stopper]:
            if task not in done:
                task.cancel()
        died = [(waits[t], t.result()) for t in done if t in waits]
        for name, code in died:
            log.error("part_exited", part=name, exit_code=code)
        return 1 if died else 0

    async def stop(self) -> None:
        for child in reversed(self.children):
            code = await child.stop(STOP_TIMEOUT_S)
            log.info("part_stopped", part=child.name, exit_code=code)
        if self.temporal is not None:
            await self.temporal.stop(STOP_TIMEOUT_S)
            log.info("part_stopped", part="temporal")


def banner(plan: StackPlan) -> str:
    keys = plan.env.get("ESCROW_API_KEYS", DEFAULT_API_KEY)
    api_key = keys if keys == DEFAULT_API_KEY else "(first of ESCROW_API_KEYS)"
    lines = ["", "cotpay-escrow is running. Ctrl-C stops everything.", ""]
    if plan.external_temporal is None:
        if plan.ui_port is not None:
            lines.append(f"  Temporal UI      http://{plan.host}:{plan.ui_port}")
        lines.append(f"  Temporal         {plan.temporal_address} (namespace {plan.namespace})")
    else:
        lines.append(f"  Temporal         {plan.temporal_address} (existing, not started here)")
    lines.append(
        f"  HTTP gateway     {plan.gateway_url}  (OpenAPI: {plan.gateway_url}/openapi.json)"
    )
    lines.append(f"  API key          {api_key}")
    lines.append(f"  Metrics          {plan.gateway_url}/metrics")
    if plan.external_cotpay is None:
        lines.append(f"  Cotpay sandbox   {plan.sandbox_url}  (payout rule {plan.payout_rule})")
    else:
        lines.append(f"  Cotpay           {plan.external_cotpay} (no sandbox started)")
    if plan.external_temporal is None and plan.ui_port is not None:
        lines.append(
            '  Stuck orders     EscrowStatus="NEEDS_ATTENTION" in the UI, '
            "or: cotpay-escrow ops list --status NEEDS_ATTENTION"
        )
    lines.append(f"  Data             {plan.data_dir}")
    if plan.codec_server:
        lines.append(f"  Codec server     {plan.codec_url}  (the UI decrypts payloads through it)")
    if plan.encrypted:
        ring = plan.env.get("ESCROW_CODEC_KEYS_FILE")
        lines.append(f"  Payloads         encrypted, key ring {ring or 'from ESCROW_CODEC_KEYS'}")
        if plan.codec_keys_file is not None:
            lines.append(
                "  Other terminals  export ESCROW_CODEC_KEYS_FILE="
                f"{plan.codec_keys_file}  (for `cotpay-escrow order`/`ops`)"
            )
    elif plan.external_temporal is None:
        lines.append("  Payloads         not encrypted (--plain-payloads)")
    demo = "cotpay-escrow demo"
    if plan.gateway_port != 8000:
        demo += f" --gateway-url {plan.gateway_url}"
    if plan.external_cotpay is None and plan.sandbox_port != 8090:
        demo += f" --sandbox-url {plan.sandbox_url}"
    if plan.external_temporal is None and plan.ui_port not in (None, 8233):
        demo += f" --ui-url http://{plan.host}:{plan.ui_port}"
    lines += ["", f"Try:  {demo}", ""]
    return "\n".join(lines)


async def run_stack(plan: StackPlan) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stack = Stack(plan)
    try:
        starting = asyncio.create_task(stack.start())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            return 0
        if (error := starting.exception()) is not None:
            log.error("stack_start_failed", error=str(error))
            return 1
        print(banner(plan), flush=True)
        return await stack.supervise(stop)
    finally:
        await stack.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _main(args: argparse.Namespace) -> int:
    configure_logging(os.environ.get("ESCROW_LOG_FORMAT", "console"))
    plan = plan_from(args, dict(os.environ))
    busy = _busy_ports(plan)
    if busy:
        print(
            f"cannot start: {', '.join(busy)} already in use "
            "(another `cotpay-escrow run`? stop it, or pick other ports with the --*-port flags)",
            file=sys.stderr,
        )
        return 1
    return asyncio.run(run_stack(plan))
