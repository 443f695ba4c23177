"""Vietnamese working days for the ``business-t1-1600`` payout rule.

Public holidays come from the ``holidays`` package (Labour Code 2019 art. 112, Tết and Hùng
Kings' day on the lunar calendar, days in lieu). The government also moves days each year
(worked Saturdays, bridged holidays), which the package does not always know. Add them here:

* ``EXTRA_DAYS_OFF``: dates that are not working days although the package says they are.
* ``WORKED_SATURDAYS``: Saturdays (or Sundays) that are working days by decree.

Both are part of the workflow code too (``cotpay/payout_window.py`` is what the workflow uses to
schedule payouts): changing them changes the payout instant of orders in flight, so ship such a
change like any workflow change (see docs/workflow.md, versioning).
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import holidays

EXTRA_DAYS_OFF: frozenset[date] = frozenset()
WORKED_SATURDAYS: frozenset[date] = frozenset()


@lru_cache(maxsize=64)
def _public_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("VN", years=year).keys())


def is_public_holiday(day: date) -> bool:
    return day in _public_holidays(day.year) or day in EXTRA_DAYS_OFF


def is_working_day(day: date) -> bool:
    if day in WORKED_SATURDAYS:
        return True
    if day.weekday() >= 5:
        return False
    return not is_public_holiday(day)
