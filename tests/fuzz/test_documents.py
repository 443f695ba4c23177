"""The OpenAPI documents the fuzz tests read are sound: every constraint is a JSON Schema keyword.

Pydantic writes a bound it cannot attach to the type (one given after a validator) as ``ge`` or
``le``, which JSON Schema ignores: the document then allows what the API refuses, as the fuzz
tests found for the sandbox's clock (docs/reliability-fuzzing.md).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.testing import RunningSandbox

pytestmark = pytest.mark.timeout(60)

PYDANTIC_ONLY = frozenset({"ge", "le", "gt", "lt", "strict", "allow_inf_nan", "max_digits"})


def _pydantic_keywords(node: Any, path: tuple[str, ...] = ()) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in PYDANTIC_ONLY and path[-1:] != ("properties",):
                found.append("/".join((*path, key)))
            found += _pydantic_keywords(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _pydantic_keywords(value, (*path, str(index)))
    return found


async def test_gateway_document_uses_json_schema_keywords(gateway_http: httpx.AsyncClient) -> None:
    document = (await gateway_http.get("/openapi.json")).json()
    assert document["paths"]
    assert _pydantic_keywords(document) == []


async def test_sandbox_document_uses_json_schema_keywords(fuzz_sandbox: RunningSandbox) -> None:
    document = (await fuzz_sandbox.admin.get("/openapi.json")).json()
    assert any(path.startswith("/sandbox/") for path in document["paths"])
    assert _pydantic_keywords(document) == []
