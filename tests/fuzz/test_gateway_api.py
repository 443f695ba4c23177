"""Schemathesis over the gateway's OpenAPI document, against the real app and backend.

Every operation of ``/openapi.json`` gets the examples, coverage and fuzzing phases (bounded and
derandomized: tests/fuzz/settings.py), sent with a valid API key (the ``api_auth`` fixture). Each
answer must pass every check in ``settings.CHECKS``: no 5xx, a documented status code, content type,
headers and body schema, invalid data refused, valid data not refused, and authentication
enforced (``ignored_auth`` sends an accepted request again without and with a wrong key). The
exceptions, each with its reason, are in docs/reliability-fuzzing.md.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from schemathesis import Case

from tests.fuzz.checks import validation_agrees_with_document

pytestmark = pytest.mark.timeout(600)

schema = schemathesis.pytest.from_fixture("gateway_schema")


@schema.parametrize()
def test_gateway_api(case: Case[Any], api_auth: dict[str, str]) -> None:
    case.call_and_validate(
        headers=api_auth, additional_checks=[validation_agrees_with_document("invalid_request")]
    )
