"""A ``CotpayClient`` that records how long each Cotpay call took, per workflow.

It wraps the client's one exchange method (seal, HTTP round trip, open), so a call's latency is
what the activity waits for. Calls made inside an activity are filed under the activity's
workflow id, others under ``""``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from typing_extensions import override

from cotpay.client import CotpayClient
from cotpay.models import Endpoint


@dataclass(frozen=True)
class Call:
    endpoint: str
    seconds: float


class TimedCotpayClient(CotpayClient):
    calls: defaultdict[str, list[Call]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = defaultdict(list)

    @override
    async def _exchange(self, endpoint: Endpoint, payload: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return await super()._exchange(endpoint, payload)
        finally:
            key = (activity.info().workflow_id or "") if activity.in_activity() else ""
            self.calls[key].append(Call(endpoint.name, time.perf_counter() - started))
