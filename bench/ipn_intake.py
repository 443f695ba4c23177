"""IPN intake over HTTP against a raw ``handle.signal``, measured in the same run on the same
orders (docs/benchmarks.md, section ``engine``).

Orders parked in AWAITING_PAYMENT each receive the HOLDING IPN Cotpay would send, again and
again: over HTTP, sealed in Cotpay's envelope as the sandbox seals it and posted to the signed
IPN URL of a gateway (the gateway checks the signature, opens the envelope and signals), and as
the same ``ipn`` signal sent straight to the workflow with the SDK. The two alternate, order by
order, at a fixed concurrency. The first round only warms up (it moves each order to HELD, the
rounds after are repeats the workflow records as duplicates, as Cotpay's retries are). A sample
is the time until the answer: a 200 from the gateway, or the signal call's return; both mean
Temporal has the signal. Sealing happens before the clock starts: it is Cotpay's work.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from temporalio.client import Client

from bench.process_stack import ProcessStack
from bench.stats import Deadline, ms, percentile, ratio
from cotpay.envelope import EncryptedEnvelope, Sealed, load_public_key
from cotpay.ipn import IpnBody, IpnStep, ipn_signature
from workflows.models import IpnSignal, workflow_id_for

STEP = IpnStep.VERIFY  # the step the sandbox sends HOLDING on (sandbox/service.py)


def _body(ref: str, id_order: int, amount: int, told: datetime) -> dict[str, Any]:
    return {
        "idOrder": id_order,
        "status": "HOLDING",
        "code": 10100,
        "message": "Payment received; money held",
        "amount": amount,
        "transactionId": f"bench-hold-{ref}",
        "time": told.isoformat(),
    }


class IpnSender:
    def __init__(self, stack: ProcessStack, client: Client, gateways: list[str]) -> None:
        env = stack.plan.env
        self._envelope = EncryptedEnvelope(
            peer_public_key=load_public_key((stack.keys_dir / "merchant_public.pem").read_bytes()),
            own_private_key=None,
        )
        self._token = env["COTPAY_ACCESS_TOKEN"]
        self._app_id = env["COTPAY_APP_ID"]
        self._secret = stack.ipn_secret
        self._client = client
        self._http = [
            httpx.AsyncClient(base_url=url, timeout=30.0, limits=httpx.Limits(max_connections=64))
            for url in gateways
        ]

    async def aclose(self) -> None:
        for http in self._http:
            await http.aclose()

    def _seal(self, ref: str, body: dict[str, Any]) -> Sealed:
        return self._envelope.seal(
            body, path=f"/ipn/{ref}/{STEP.value}", access_token=self._token, app_id=self._app_id
        )

    async def over_http(self, i: int, ref: str, body: dict[str, Any]) -> float:
        sealed = self._seal(ref, body)
        sig = ipn_signature(self._secret, ref, STEP.value)
        http = self._http[i % len(self._http)]
        started = time.perf_counter()
        r = await http.post(
            f"/ipn/{ref}/{STEP.value}",
            params={"sig": sig},
            content=sealed.body,
            headers=sealed.headers,
        )
        elapsed = time.perf_counter() - started
        if r.status_code != 200:
            raise RuntimeError(f"IPN for {ref}: {r.status_code} {r.text[:200]}")
        return elapsed

    async def raw_signal(self, ref: str, body: dict[str, Any]) -> float:
        signal = IpnSignal(
            step=STEP, body=IpnBody.model_validate(body), received_at=datetime.now(UTC)
        )
        handle = self._client.get_workflow_handle(workflow_id_for(ref))
        started = time.perf_counter()
        await handle.signal("ipn", signal)
        return time.perf_counter() - started


async def measure(
    sender: IpnSender,
    orders: list[tuple[str, int]],
    *,
    amount: int,
    rounds: int,
    concurrency: int,
    deadline: Deadline,
) -> dict[str, Any]:
    """``rounds`` measured rounds after one warm-up round over ``orders`` (ref, Cotpay id)."""
    told = datetime.now(UTC)
    gate = asyncio.Semaphore(concurrency)
    http_s: list[float] = []
    raw_s: list[float] = []

    async def one(round_no: int, i: int, ref: str, id_order: int) -> None:
        body = _body(ref, id_order, amount, told)
        use_http = (i + round_no) % 2 == 0
        async with gate:
            deadline.check("IPN intake")
            if use_http:
                elapsed = await sender.over_http(i, ref, body)
            else:
                elapsed = await sender.raw_signal(ref, body)
        if round_no > 0:
            (http_s if use_http else raw_s).append(elapsed)

    for round_no in range(rounds + 1):
        async with asyncio.TaskGroup() as group:
            for i, (ref, id_order) in enumerate(orders):
                group.create_task(one(round_no, i, ref, id_order))
    figures = {
        "orders": len(orders),
        "rounds": rounds,
        "concurrency": concurrency,
        "samples_per_method": min(len(http_s), len(raw_s)),
        "http_ms_p50": ms(percentile(http_s, 50)),
        "http_ms_p99": ms(percentile(http_s, 99)),
        "signal_ms_p50": ms(percentile(raw_s, 50)),
        "signal_ms_p99": ms(percentile(raw_s, 99)),
    }
    figures["ipn_over_signal_p50"] = ratio(figures["http_ms_p50"], figures["signal_ms_p50"])
    figures["ipn_over_signal_p99"] = ratio(figures["http_ms_p99"], figures["signal_ms_p99"])
    return figures
