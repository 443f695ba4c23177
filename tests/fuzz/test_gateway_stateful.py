"""Schemathesis' stateful run over the gateway: sequences of calls along the document's links.

``POST /v1/orders`` documents links from its answer's ``orderRef`` to the order's routes
(``starter/gateway/routes/orders.py``), so the state machine starts orders and then reads,
delivers, disputes, cancels and operates on them, with generated bodies, on the real workflow.
Every answer passes the same checks as the single-request run, plus the stateful ones: an order
just created can be read (``ensure_resource_availability``). Bounded and derandomized
(tests/fuzz/settings.py); docs/reliability-fuzzing.md.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import Case, Response

from starter.gateway.deps import ORDER_REF_PATTERN
from tests.fuzz.bridge import LoopBridge
from tests.fuzz.checks import validation_agrees_with_document
from tests.fuzz.settings import (
    GATEWAY_EXCEPTIONS,
    RANDOM,
    STATEFUL_EXAMPLES,
    STATEFUL_STEPS,
    fuzz_config,
)

pytestmark = pytest.mark.timeout(600)

REF = re.compile(ORDER_REF_PATTERN)


def test_gateway_stateful(gateway_bridge: LoopBridge, api_auth: dict[str, str]) -> None:
    config = fuzz_config(authenticated=True, operations=GATEWAY_EXCEPTIONS, stateful=True)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", gateway_bridge, config=config)
    check = validation_agrees_with_document("invalid_request")
    base = schema.as_state_machine()

    class GatewayMachine(base):  # type: ignore[valid-type,misc]
        def setup(self) -> None:
            # Each scenario starts orders of its own: a reference drawn again in another
            # scenario (or in Hypothesis' replay of a failure) would meet the earlier order and
            # answer 200 or 409 instead of 201, and the scenario would not repeat.
            self.scenario = uuid.uuid4().hex[:8]

        def before_call(self, case: Case[Any]) -> None:
            body = case.body
            if case.operation.label == "POST /v1/orders" and isinstance(body, dict):
                ref = body.get("orderRef")
                if isinstance(ref, str) and REF.fullmatch(ref) and len(ref) <= 55:
                    body["orderRef"] = f"{self.scenario}-{ref}"

        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"headers": api_auth}

        def validate_response(
            self,
            response: Response,
            case: Case[Any],
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(
                response,
                additional_checks=[check],
                headers=api_auth,
                transport_kwargs={**kwargs, "headers": api_auth},
            )

    before = gateway_bridge.requests
    GatewayMachine.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=not RANDOM,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
    assert gateway_bridge.requests - before >= STATEFUL_EXAMPLES, "the machine made calls"
