"""Rate limits of the gateway (docs/security.md, "Rate limits"), with the PyPI package
``limits`` (moving windows; in-memory storage by default).

Four buckets, each ``ESCROW_RATE_LIMIT_*`` a ``limits`` string (``600/minute``, ``20/second``;
``off`` turns one off):

- ``SOURCE`` (default ``2400/minute``): every request but the IPN intake and ``/healthz``, per
  client address, counted before the API key is looked at;
- ``KEY`` (default ``1200/minute``): per API key, once it is known;
- ``IPN`` (default ``2400/minute``): Cotpay's callbacks per client address, apart from the API,
  so that no API client can starve them;
- ``IPN_FORGED`` (default ``60/minute``): IPNs whose signature is wrong, per client address;
  past it, that address gets 429 on the IPN intake until the window moves, while Cotpay, which
  never sends a wrong signature, is not slowed.

Over a limit: ``429 rate_limited`` with ``Retry-After`` (seconds), before the body is read. The
client address is the socket's peer, or ``X-Forwarded-For`` when the peer is a proxy listed in
uvicorn's ``FORWARDED_ALLOW_IPS`` (default loopback only). The in-memory storage counts per
gateway process; ``ESCROW_RATE_LIMIT_STORAGE`` takes any ``limits`` storage URI (for example
``async+redis://host:6379`` with the ``redis`` package installed) to share the counts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

import limits
import structlog
from limits.aio.strategies import MovingWindowRateLimiter
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import Scope, Send

from runtime.metrics import record_rate_limited
from starter.gateway.middleware import send_error

log = structlog.get_logger("cotpay_escrow.gateway")

Bucket = Literal["source", "key", "ipn", "ipn_forged"]
OFF = frozenset({"", "off", "none", "0"})


class RateLimitSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESCROW_RATE_LIMIT_", extra="ignore")

    source: str = "2400/minute"
    key: str = "1200/minute"
    ipn: str = "2400/minute"
    ipn_forged: str = "60/minute"
    storage: str = Field(default="async+memory://")

    @field_validator("source", "key", "ipn", "ipn_forged")
    @classmethod
    def _parses(cls, value: str) -> str:
        if value.strip().lower() not in OFF:
            limits.parse(value)  # ValueError: the gateway refuses to start
        return value


def _item(text: str) -> limits.RateLimitItem | None:
    return None if text.strip().lower() in OFF else limits.parse(text)


@dataclass
class Verdict:
    allowed: bool
    retry_after: int = 0


class RateLimiter:
    """The gateway's buckets over one ``limits`` storage."""

    def __init__(self, settings: RateLimitSettings | None = None) -> None:
        settings = settings or RateLimitSettings()
        self.items: dict[Bucket, limits.RateLimitItem | None] = {
            "source": _item(settings.source),
            "key": _item(settings.key),
            "ipn": _item(settings.ipn),
            "ipn_forged": _item(settings.ipn_forged),
        }
        storage = limits.storage.storage_from_string(settings.storage)
        self.strategy = MovingWindowRateLimiter(storage)

    async def _hit(self, bucket: Bucket, who: str) -> Verdict:
        item = self.items[bucket]
        if item is None:
            return Verdict(True)
        if await self.strategy.hit(item, bucket, who):
            return Verdict(True)
        return Verdict(False, await self._retry_after(item, bucket, who))

    async def _retry_after(self, item: limits.RateLimitItem, bucket: Bucket, who: str) -> int:
        stats = await self.strategy.get_window_stats(item, bucket, who)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def _refuse(self, send: Send, bucket: Bucket, retry_after: int) -> bool:
        record_rate_limited(bucket)
        log.info("gateway.rate_limited", bucket=bucket, retry_after=retry_after)
        await send_error(
            send,
            429,
            "rate_limited",
            f"too many requests ({bucket}); retry in {retry_after} s",
            headers=[(b"retry-after", str(retry_after).encode())],
        )
        return False

    async def admit_source(self, scope: Scope, send: Send, path: str | None) -> bool:
        """Before authentication: the IPN buckets for the IPN intake, the source bucket for the
        rest (``/healthz`` is never limited). False: a 429 was sent."""
        if path == "/healthz":
            return True
        source = client_address(scope)
        if path is not None and path.startswith("/ipn/"):
            forged = self.items["ipn_forged"]
            if forged is not None and not await self.strategy.test(forged, "ipn_forged", source):
                return await self._refuse(
                    send, "ipn_forged", await self._retry_after(forged, "ipn_forged", source)
                )
            verdict = await self._hit("ipn", source)
            return True if verdict.allowed else await self._refuse(send, "ipn", verdict.retry_after)
        verdict = await self._hit("source", source)
        return True if verdict.allowed else await self._refuse(send, "source", verdict.retry_after)

    async def admit_key(self, key_id: str, send: Send) -> bool:
        verdict = await self._hit("key", key_id)
        return True if verdict.allowed else await self._refuse(send, "key", verdict.retry_after)

    async def forged_ipn(self, scope: Scope) -> None:
        """Count an IPN with a wrong signature against its sender (the IPN route calls it)."""
        item = self.items["ipn_forged"]
        if item is not None:
            await self.strategy.hit(item, "ipn_forged", client_address(scope))


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
