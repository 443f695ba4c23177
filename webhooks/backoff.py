"""The retry schedule of a delivery (docs/webhooks.md, Retries): exponential with jitter.

After the n-th failed attempt the next one comes ``min(first * 2**(n-1), max) * U(0.8, 1.2)``
later, and never after the delivery's ``expiresAt``: the last attempt is made at that instant,
and when it fails too the delivery is failed. Pure: the caller passes the clock's ``now`` and
the random source, so tests replay a schedule exactly.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

JITTER = 0.2


def retry_delay(
    failures: int, *, first: timedelta, cap: timedelta, rng: random.Random
) -> timedelta:
    """The wait after ``failures`` failed attempts (1 = after the first)."""
    exponent = min(max(failures - 1, 0), 32)
    base = min(cap.total_seconds(), first.total_seconds() * 2**exponent)
    return timedelta(seconds=base * rng.uniform(1 - JITTER, 1 + JITTER))


def next_attempt(
    now: datetime,
    failures: int,
    expires_at: datetime,
    *,
    first: timedelta,
    cap: timedelta,
    rng: random.Random,
) -> datetime | None:
    """When to try again after a failed attempt at ``now``; None: the window is over."""
    if now >= expires_at:
        return None
    return min(now + retry_delay(failures, first=first, cap=cap, rng=rng), expires_at)


def nominal_schedule(first: timedelta, cap: timedelta, window: timedelta) -> list[timedelta]:
    """The attempt times (from the first attempt) without jitter, for the docs and tests."""
    at, times, failures = timedelta(0), [timedelta(0)], 0
    while at < window:
        failures += 1
        exponent = min(failures - 1, 32)
        at = min(at + min(cap, first * 2**exponent), window)
        times.append(at)
    return times
