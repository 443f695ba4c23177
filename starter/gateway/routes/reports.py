"""``GET /v1/reports/money?day=``: orders and VND totals per money state, now or at the end of a
Vietnam day, with that day's money flows (docs/http-api.md, docs/store.md "Money report")."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from starter.gateway.auth import Viewer
from starter.gateway.deps import Store
from starter.gateway.reads import bounded
from store.errors import InvalidQuery
from store.models import MoneyReport, vn_today

router = APIRouter(prefix="/v1")


def parse_day(text: str | None) -> date | None:
    if text is None or text == "":
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidQuery("invalid_date", "day: give a date, YYYY-MM-DD", "day") from None
    if day > vn_today():
        raise InvalidQuery("invalid_date", "day: a day in the future", "day")
    return day


@router.get("/reports/money", response_model=MoneyReport)
async def money_report(
    store: Store,
    who: Viewer,
    day: Annotated[
        str | None,
        Query(
            description="a Vietnam calendar day, YYYY-MM-DD (not in the future); default now",
            examples=["2025-12-31"],
        ),
    ] = None,
) -> JSONResponse:
    """Where the money is: count and VND total per state, now or as of the end of ``day``."""
    report = await bounded(store.money_report(parse_day(day), merchant=who.merchant))
    return JSONResponse(report.model_dump(mode="json"))
