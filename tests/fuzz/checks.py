"""Checks of our own, added to schemathesis' built-in ones (docs/reliability-fuzzing.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemathesis import Case, Response
from schemathesis.checks import CheckContext

Check = Callable[[CheckContext, Response, Case[Any]], bool | None]


def validation_agrees_with_document(validation_code: str) -> Check:
    """Schema-valid data (positive mode) must pass the API's validation: a ``400``, or a ``422``
    whose ``error`` is ``validation_code``, means the document allows what the validation
    refuses. A ``422`` with another code is the domain's refusal (Cotpay refused the order, the
    range is too large, ...), which no schema can foresee, and passes."""

    def check(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
        meta = case.meta
        if meta is None or not meta.generation.mode.is_positive:
            return None
        if response.status_code == 400:
            raise AssertionError(f"schema-valid request refused with 400: {response.text[:300]}")
        if response.status_code == 422 and _error_code(response) == validation_code:
            if _documented_exception(response, case):
                return None
            raise AssertionError(
                f"schema-valid request refused by validation ({validation_code}): the document"
                f" allows what the API refuses: {response.text[:300]}"
            )
        return None

    check.__name__ = "validation_agrees_with_document"
    return check


def _error_code(response: Response) -> str | None:
    try:
        body: Any = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


_BOUNDS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def _documented_exception(response: Response, case: Case[Any]) -> bool:
    """Every refused field is a documented exception (docs/reliability-fuzzing.md):

    - an integer sent as ``150000.0``: JSON Schema's ``integer`` admits it (its data model has
      one number 150000); the gateway refuses it on purpose, since an amount written with a
      fraction is a client bug to catch (docs/http-api.md);
    - a duration string out of its range (``"P2Y"`` for a window of at most 365 days): JSON
      Schema's ``format: duration`` has no bound; the number form of the same field states it.
    """
    fields = response.json().get("fields") or []
    if not fields:
        return False
    for problem in fields:
        value: Any = case.body
        for part in str(problem.get("field", "")).split(".")[1:]:
            value = value.get(part) if isinstance(value, dict) else None
        kind = problem.get("type")
        integral = kind == "int_type" and isinstance(value, float) and value.is_integer()
        duration = kind in _BOUNDS and isinstance(value, str)
        if not (integral or duration):
            return False
    return True
