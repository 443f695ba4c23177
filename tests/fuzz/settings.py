"""How much the fuzz tests generate and which schemathesis checks they run.

The checks and their exceptions are explained in docs/reliability-fuzzing.md.

``make test`` runs a bounded, derandomized pass: ``ESCROW_FUZZ_EXAMPLES`` examples per operation
in the fuzzing phase (default 25), plus the examples and coverage phases, from the fixed seed
``ESCROW_FUZZ_SEED``. A longer exploratory run raises the first and lets the seed vary, e.g.
``ESCROW_FUZZ_EXAMPLES=500 ESCROW_FUZZ_RANDOM=1 .venv/bin/pytest tests/fuzz``.
"""

from __future__ import annotations

import os
from typing import Any

from schemathesis.config import SchemathesisConfig

EXAMPLES = int(os.environ.get("ESCROW_FUZZ_EXAMPLES", "25"))
# Scenarios of the stateful run (each up to STEPS calls along the document's links).
STATEFUL_EXAMPLES = int(os.environ.get("ESCROW_FUZZ_STATEFUL_EXAMPLES", "15"))
STATEFUL_STEPS = int(os.environ.get("ESCROW_FUZZ_STATEFUL_STEPS", "8"))
# Examples per operation and caller of the role fuzz (test_roles.py): six callers, fuzzing phase.
ROLE_EXAMPLES = int(os.environ.get("ESCROW_FUZZ_ROLE_EXAMPLES", "8"))
SEED = int(os.environ.get("ESCROW_FUZZ_SEED", "20261201"))
RANDOM = os.environ.get("ESCROW_FUZZ_RANDOM", "") not in ("", "0", "false")

# Every check schemathesis has for single requests. The stateful run adds the checks that need
# a sequence of calls (STATEFUL_CHECKS). Who may do what is the role fuzz's (ROLE_CHECKS and
# test_roles.py: each role against the access table, another merchant's key on our orders).
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "missing_required_header",
    "ignored_auth",
    "unsupported_method",
    "allow_header_conformance",
)

STATEFUL_CHECKS = ("use_after_free", "ensure_resource_availability")

# The role fuzz: no 5xx, every answer as documented. Whether the data was valid is the gateway
# fuzz's concern (positive/negative data checks); here a role's refusal is the expected answer.
ROLE_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)

# Schema-valid data may still be refused by the domain with a 422 that is not a validation error
# (a Cotpay refusal, a time range the store refuses, an unknown cursor): ``checks.py`` fails the
# case when the 422 is the validation's own code, so the document and the validation agree.
POSITIVE_STATUSES = ["2xx", "401", "403", "404", "409", "422", "429"]
# Refusals of schema-violating data: schemathesis' list, plus 413 (a body over the size limit).
NEGATIVE_STATUSES = [
    "400",
    "401",
    "403",
    "404",
    "405",
    "406",
    "409",
    "413",
    "415",
    "422",
    "428",
    "429",
]


def fuzz_config(
    *,
    authenticated: bool = False,
    operations: list[dict[str, Any]] | None = None,
    stateful: bool = False,
) -> SchemathesisConfig:
    """The schemathesis configuration of one fuzzed API.

    ``authenticated``: the test sends a valid caller's credentials with every request
    (``case.call_and_validate(headers=...)``), so schemathesis generates none of its own;
    ``ignored_auth`` still sends each accepted request again without and with wrong ones.
    ``operations`` are per-operation tables (``include-path``, ``checks``, ...), each one of the
    exceptions docs/reliability-fuzzing.md lists. ``stateful``: for a state machine along the
    document's links (``schema.as_state_machine()``), with the checks that need sequences.
    """
    names = CHECKS + STATEFUL_CHECKS if stateful else CHECKS
    checks: dict[str, Any] = {name: {"enabled": True} for name in names}
    checks["positive_data_acceptance"]["expected-statuses"] = POSITIVE_STATUSES
    checks["negative_data_rejection"]["expected-statuses"] = NEGATIVE_STATUSES
    phases = {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": stateful, "max-steps": STATEFUL_STEPS},
    }
    return _config(
        EXAMPLES, security=not authenticated, phases=phases, checks=checks, operations=operations
    )


def _config(
    examples: int,
    *,
    security: bool,
    phases: dict[str, Any],
    checks: dict[str, Any],
    operations: list[dict[str, Any]] | None,
) -> SchemathesisConfig:
    """What every configuration here shares: ``examples`` cases per operation, derandomized
    from ``SEED`` unless ``RANDOM``, no example database, the slow-data health checks off;
    ``security``: schemathesis generates credentials too."""
    data: dict[str, Any] = {
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        "generation": {
            "max-examples": examples,
            "deterministic": not RANDOM,
            "database": "none",
            "with-security-parameters": security,
        },
        "phases": phases,
        "checks": checks,
    }
    if operations:
        data["operations"] = operations
    if not RANDOM:
        data["seed"] = SEED
    return SchemathesisConfig.from_dict(data)


# The gateway's exceptions, each explained in docs/reliability-fuzzing.md.
GATEWAY_EXCEPTIONS: list[dict[str, Any]] = [
    {
        # A health probe takes no input: it answers its state whatever the query says, so
        # that a load balancer's probe is never refused.
        "include-path": "/healthz",
        "include-method": "GET",
        "checks": {"negative_data_rejection": {"enabled": False}},
    },
]


def role_config(path_regex: str) -> SchemathesisConfig:
    """The role fuzz's configuration (test_roles.py): ``ROLE_EXAMPLES`` cases per operation from
    the examples and fuzzing phases, derandomized from ``SEED``, no example database, the test
    sending each caller's key (no generated credentials) and checking ``ROLE_CHECKS``. Only the
    operations whose path matches ``path_regex`` run (schemathesis' pytest plugin replaces the
    filters of a schema fixture; those of its configuration hold)."""
    return _config(
        ROLE_EXAMPLES,
        security=False,
        phases={
            "examples": {"enabled": True},
            "coverage": {"enabled": False},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        checks={name: {"enabled": name in ROLE_CHECKS} for name in CHECKS},
        operations=[{"exclude-path-regex": path_regex, "enabled": False}],
    )
