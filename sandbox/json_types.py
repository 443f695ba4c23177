"""JSON values of the admin API as its OpenAPI document states them (docs/sandbox.md).

Pydantic's lax mode would read ``true`` as 1 and ``"5"`` as 5, and a number as a Unix time, so
the admin API accepted what its document refuses (found by schemathesis). These types take what
JSON Schema means: an ``integer`` is an integral JSON number (``65.0`` included), a ``number``
any JSON number, a ``date-time`` an ISO 8601 string.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator


def _json_number(value: object) -> object:
    if isinstance(value, bool | str):
        raise ValueError("a JSON number is required")
    return value


def _json_time(value: object) -> object:
    if not isinstance(value, str | datetime):
        raise ValueError("an ISO 8601 time with an offset is required")
    return value


# Put bounds before it, ``Annotated[int, Field(ge=0), JSON_NUMBER]``: bounds given after a
# validator reach the OpenAPI document as ``ge``/``le``, which JSON Schema does not know.
JSON_NUMBER = BeforeValidator(_json_number)
JsonTime = Annotated[AwareDatetime, BeforeValidator(_json_time)]
