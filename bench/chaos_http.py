"""HTTP for the chaos harness: the gateway and the sandbox admin API, with bounded retries.

The gateway and Temporal are killed during a run, so a call that meets a connection error, a
timeout or a 502/503/504 (and a 500, counted apart) is repeated with backoff, within a bounded
number of attempts and seconds. Every message of the API is safe to repeat (docs/http-api.md):
a start with the same body returns the same order, a repeated message answers the current view.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx

RETRY_STATUSES = frozenset({500, 502, 503, 504})
MAX_ATTEMPTS = 60
MAX_CALL_S = 180.0


class CallFailed(RuntimeError):
    pass


class Http:
    def __init__(self, gateway: str, sandbox: str, api_key: str) -> None:
        self.gateway = httpx.AsyncClient(
            base_url=gateway,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(45.0, connect=3.0),
        )
        self.sandbox = httpx.AsyncClient(base_url=sandbox, timeout=httpx.Timeout(20.0, connect=3.0))
        self.retries: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    async def aclose(self) -> None:
        await self.gateway.aclose()
        await self.sandbox.aclose()

    async def call(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        body: Any = None,
        *,
        within: float = MAX_CALL_S,
    ) -> httpx.Response:
        """The first answer that is not a transient failure; ``CallFailed`` when none came."""
        side = "gateway" if client is self.gateway else "sandbox"
        self.calls[side] += 1
        deadline = time.monotonic() + within
        delay = 0.25
        last = "no attempt"
        for _ in range(MAX_ATTEMPTS):
            try:
                response = await client.request(method, path, json=body)
            except httpx.TransportError as exc:
                last = type(exc).__name__
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                last = f"HTTP {response.status_code}"
            self.retries[f"{side} {last}"] += 1
            if time.monotonic() + delay > deadline:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)
        raise CallFailed(f"{method} {path}: {last}")

    async def gw(self, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return await self.call(self.gateway, method, path, body, **kw)

    async def sb(self, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return await self.call(self.sandbox, method, path, body, **kw)

    async def sb_ok(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = await self.sb(method, path, body)
        if response.status_code >= 300:
            raise CallFailed(f"{method} {path}: {response.status_code} {response.text[:200]}")
        result: dict[str, Any] = response.json()
        return result
