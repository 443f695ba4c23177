"""``GET /v1/exports/orders.csv?from=&to=``: the orders created in a range, as a streaming CSV
for finance (UTF-8 with a byte order mark, so Excel shows Vietnamese text as written).

The range is checked before anything is sent (``422``: ``invalid_date``, ``invalid_range``,
``range_too_large`` beyond 366 days), and so is the store: the first chunk is read before the
answer starts, so a store that is down answers ``503 store_unavailable``, not a broken file
(docs/http-api.md, docs/store.md "CSV export").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from starter.gateway.auth import Viewer
from starter.gateway.deps import Store
from starter.gateway.reads import bounded, query_time
from store.errors import InvalidQuery
from store.models import parse_instant

router = APIRouter(prefix="/v1")

_BOUND = (
    "a date (a Vietnam day, included) or an ISO 8601 time with an offset (encode '+' as %2B;"
    " from included, to excluded)"
)
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


@router.get(
    "/exports/orders.csv",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "one row per order created in the range, oldest first",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def export_orders(
    store: Store,
    who: Viewer,
    start: Annotated[str, Query(alias="from", description=_BOUND, examples=["2025-12-01"])],
    end: Annotated[str, Query(alias="to", description=_BOUND, examples=["2025-12-31"])],
) -> StreamingResponse:
    """The orders created in ``[from, to]`` as CSV, streamed page by page (at most 366 days)."""
    low = parse_instant(query_time(start), "from", end_of_day=False)
    high = parse_instant(query_time(end), "to", end_of_day=True)
    if low is None or high is None:
        field = "from" if low is None else "to"
        raise InvalidQuery("invalid_date", f"{field}: give a date or a time", field)
    chunks = store.export_orders_csv(low, high, merchant=who.merchant)
    first = await bounded(anext(chunks, b""))

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    return StreamingResponse(
        body(),
        media_type=CSV_MEDIA_TYPE,
        headers={"content-disposition": 'attachment; filename="orders.csv"'},
    )
