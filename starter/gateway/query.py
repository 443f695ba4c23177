"""Unknown query parameters are refused, as unknown body fields are (docs/http-api.md).

``GET /v1/orders?stauts=HELD`` would otherwise answer every order, and a finance export or an
operator's list built on a misspelt filter looks right while it is not. A route that takes this
dependency answers ``422 invalid_request`` for a query parameter its OpenAPI operation does not
document, with ``fields`` naming it (``query.stauts``, type ``extra_forbidden``). The document
is the list, so a parameter added to a route is known at once. The IPN endpoint does not take
it: Cotpay calls the URL it was given, and may add its own parameters.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError


def documented_query(request: Request) -> frozenset[str]:
    """The query parameters the app's OpenAPI document gives the request's operation."""
    route = request.scope.get("route")
    path = getattr(route, "path_format", None)
    if path is None:
        return frozenset()
    method = "get" if request.method == "HEAD" else request.method.lower()
    operation = request.app.openapi().get("paths", {}).get(path, {}).get(method, {})
    return frozenset(
        str(parameter["name"])
        for parameter in operation.get("parameters", [])
        if parameter.get("in") == "query"
    )


async def known_query_only(request: Request) -> None:
    """A FastAPI dependency: 422 for query parameters the operation does not document."""
    unknown = sorted(set(request.query_params) - documented_query(request))
    if unknown:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": "unknown query parameter",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )
