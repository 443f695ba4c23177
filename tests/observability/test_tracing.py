from __future__ import annotations

import asyncio
import os
import sys
import textwrap

from fastapi import FastAPI, Request

from runtime.tracing import TracingSettings, configure_tracing, instrument_app, tracing_enabled
from tests.support import serve

SCRIPT = textwrap.dedent(
    """
    import asyncio, httpx
    from fastapi import FastAPI
    from runtime.tracing import configure_tracing, instrument_app, shutdown_tracing

    interceptors = configure_tracing("cotpay-escrow-test")
    assert type(interceptors[0]).__name__ == "TracingInterceptor", interceptors
    app = FastAPI()
    assert instrument_app(app)

    @app.get("/v1/orders/{order_ref}")
    async def order(order_ref: str) -> dict[str, str]:
        return {"orderRef": order_ref}

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/v1/orders/A1")).status_code == 200

    asyncio.run(main())
    shutdown_tracing()
    """
)


def test_off_without_endpoint() -> None:
    settings = TracingSettings(exporter_otlp_endpoint=None)
    assert not tracing_enabled(settings)
    assert configure_tracing("x", settings) == []
    assert not instrument_app(FastAPI(), settings)


async def test_spans_reach_the_otlp_endpoint() -> None:
    received: list[bytes] = []
    collector = FastAPI()

    @collector.post("/v1/traces")
    async def traces(request: Request) -> dict[str, str]:
        received.append(await request.body())
        return {}

    async with serve(collector) as url:
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SERVICE_NAME": ""}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SCRIPT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0, err.decode()[-2000:]
    body = b"".join(received)
    assert b"GET /v1/orders/{order_ref}" in body
    assert b"cotpay-escrow-test" in body
