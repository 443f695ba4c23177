"""Schemathesis over the sandbox's admin API (``/sandbox/...``), on a real sandbox server.

The sandbox stands in for Cotpay in every test and in ``make run``, and its admin API is what
tests, the demo and the README drive: it must refuse bad input with its documented errors and
never answer 5xx. The document is FastAPI's, with the error answers the admin routes declare.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from schemathesis import Case

from tests.fuzz.checks import validation_agrees_with_document

pytestmark = pytest.mark.timeout(600)

# The Cotpay endpoints (``/api/web-ecommerce/...``) take sealed bodies, which a generator cannot
# make; tests/sandbox/test_fuzz.py sends them random payloads, sealed and not.
schema = schemathesis.pytest.from_fixture("sandbox_schema").include(path_regex=r"^/sandbox/")


@schema.parametrize()
def test_sandbox_admin_api(case: Case[Any]) -> None:
    case.call_and_validate(additional_checks=[validation_agrees_with_document("validation_error")])
