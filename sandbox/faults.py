"""Injected faults (``PUT /sandbox/faults``) and the sandbox's IPN retry policy.

``PUT`` replaces the whole fault set: a field left out goes back to its default (no fault), so
``PUT {}`` clears every fault.
"""

from __future__ import annotations

import asyncio
import random
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from sandbox.json_types import JSON_NUMBER

Rate = Annotated[float, Field(ge=0.0, le=1.0), JSON_NUMBER]


class Faults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # JSON numbers: ``true`` is not a rate, nor ``"5"`` a latency (found by schemathesis).
    errorRate: Rate = 0.0
    latencyMs: Annotated[int, Field(ge=0, le=120_000), JSON_NUMBER] = 0
    ipnDropRate: Rate = 0.0
    ipnDuplicateRate: Rate = 0.0
    ipnReorder: StrictBool = False
    payoutFailRate: Rate = 0.0


class IpnPolicy(BaseModel):
    """Delivery retries: attempt n waits min(base * 2**(n-1), cap) before attempt n+1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_delay: float = Field(default=0.5, gt=0)
    max_delay: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=30, ge=1)
    max_age: float = Field(default=24 * 3600.0, gt=0)
    timeout: float = Field(default=5.0, gt=0)
    reorder_window: float = Field(default=1.0, ge=0)

    def delay_after(self, attempts: int) -> float:
        return float(min(self.base_delay * 2 ** max(attempts - 1, 0), self.max_delay))


class FaultInjector:
    def __init__(self, rng: random.Random | None = None) -> None:
        self.faults = Faults()
        self._rng = rng or random.Random()

    def _hit(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def api_error(self) -> bool:
        return self._hit(self.faults.errorRate)

    def payout_fails(self) -> bool:
        return self._hit(self.faults.payoutFailRate)

    def ipn_dropped(self) -> bool:
        return self._hit(self.faults.ipnDropRate)

    def ipn_duplicated(self) -> bool:
        return self._hit(self.faults.ipnDuplicateRate)

    def reorder_delay(self, window: float) -> float:
        return self._rng.uniform(0, window) if self.faults.ipnReorder else 0.0

    async def latency(self) -> None:
        if self.faults.latencyMs > 0:
            await asyncio.sleep(self.faults.latencyMs / 1000)
