from __future__ import annotations

from typing import Any

from bench.stats import Deadline


async def run(*, quick: bool, deadline: Deadline, **kwargs: Any) -> dict[str, Any]:
    raise NotImplementedError
