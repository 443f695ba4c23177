"""Section ``sandbox``: ``CotpayClient`` calls to a real sandbox over loopback, both envelopes.

For each envelope mode a fresh sandbox (``sandbox.testing.running_sandbox``, in this event
loop, port 0 on 127.0.0.1) serves ``customerID`` for one seller and one buyer; ``concurrency``
tasks share one client and make ``requests`` calls in all, after a short warm-up. Client and
sandbox share this process and its event loop, so each request pays for sealing and opening on
both sides: the figures compare the modes, they are not a capacity of a deployed Cotpay.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import Deadline, latency_figures, rate, ratio
from cotpay.client import CotpayClient
from cotpay.models import CustomerIdRequest
from sandbox.state import EnvelopeMode
from sandbox.testing import running_sandbox

SELLER = "0911000001"
BUYER = "0911000002"
MODES: tuple[EnvelopeMode, ...] = ("encrypted", "plain")


@dataclass(frozen=True)
class Load:
    requests: int
    concurrency: int
    warmup: int

    @classmethod
    def for_run(cls, quick: bool) -> Load:
        return cls(requests=40, concurrency=4, warmup=4) if quick else cls(600, 10, 20)


async def _users(admin: Any) -> None:
    for user, name in ((SELLER, "Bench Seller"), (BUYER, "Bench Buyer")):
        r = await admin.put(
            f"/sandbox/users/{user}", json={"name": name, "walletLinked": True, "bankLinked": True}
        )
        r.raise_for_status()


async def _load(client: CotpayClient, load: Load, deadline: Deadline) -> dict[str, Any]:
    request = CustomerIdRequest(partnerId=SELLER, buyerId=BUYER)
    for _ in range(load.warmup):
        await client.customer_id(request)
    latencies: list[float] = []
    errors = 0
    remaining = load.requests

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            deadline.check("sandbox load")
            started = time.perf_counter()
            try:
                await client.customer_id(request)
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(load.concurrency)))
    elapsed = time.perf_counter() - started
    if not latencies:
        raise RuntimeError("every sandbox request failed")
    return {
        "requests": load.requests,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "requests_per_s": rate(len(latencies), elapsed),
        **latency_figures(latencies),
    }


async def _one_mode(mode: EnvelopeMode, root: Path, load: Load, deadline: Deadline) -> Any:
    async with running_sandbox(
        root / f"keys-{mode}", envelope=mode, payout_rule="immediate", write_credentials=False
    ) as sandbox:
        await _users(sandbox.admin)
        settings = sandbox.cotpay_settings().model_copy(
            update={"max_connections": load.concurrency}
        )
        async with CotpayClient(settings) as client:
            return await _load(client, load, deadline)


async def run(*, quick: bool, deadline: Deadline) -> dict[str, Any]:
    load = Load.for_run(quick)
    with tempfile.TemporaryDirectory(prefix="cotpay-bench-") as tmp:
        results = {mode: await _one_mode(mode, Path(tmp), load, deadline) for mode in MODES}
    enc, plain = results["encrypted"], results["plain"]
    return {
        "endpoint": "customerID",
        "concurrency": load.concurrency,
        "encrypted": enc,
        "plain": plain,
        "ratios": {
            "plain_over_encrypted_throughput": ratio(
                plain["requests_per_s"], enc["requests_per_s"]
            ),
            "encrypted_over_plain_p50": ratio(enc["p50_ms"], plain["p50_ms"]),
            "encrypted_over_plain_p95": ratio(enc["p95_ms"], plain["p95_ms"]),
        },
    }
