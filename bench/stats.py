"""Small figures helpers: percentiles, rates, ratios, all rounded for the JSON document."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence


class SectionTimeout(RuntimeError):
    """A section ran past its hard time limit."""


class Deadline:
    """A monotonic deadline that bounded loops check."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._at - time.monotonic()

    def check(self, what: str) -> None:
        if time.monotonic() > self._at:
            raise SectionTimeout(f"{what}: over the {self.seconds:g}s limit")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0 else 0.0


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator > 0 else 0.0


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def latency_figures(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": ms(percentile(seconds, 50)),
        "p95_ms": ms(percentile(seconds, 95)),
        "max_ms": ms(max(seconds)),
    }
