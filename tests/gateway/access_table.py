"""The access table: the least role of every route the gateway serves (docs/security.md).

One source of truth for the tests: ``tests/gateway/test_access_rules.py`` checks that the app's
routes declare exactly these rules and runs every caller over every route, and the role fuzz
(``tests/fuzz/test_roles.py``) checks schemathesis' requests of each role against it.
"""

from __future__ import annotations

from store.access_models import Role

# (method, path) -> the least role that may call it; None: public (no API key).
RULES: dict[tuple[str, str], Role | None] = {
    ("POST", "/v1/orders"): Role.shop,
    ("GET", "/v1/orders"): Role.viewer,
    ("GET", "/v1/orders/{order_ref}"): Role.viewer,
    ("POST", "/v1/orders/{order_ref}/delivered"): Role.shop,
    ("POST", "/v1/orders/{order_ref}/dispute"): Role.shop,
    ("POST", "/v1/orders/{order_ref}/cancel"): Role.shop,
    ("POST", "/v1/orders/{order_ref}/operator"): Role.operator,
    # The order store's reads, export and report: the caller's merchant only.
    ("GET", "/v1/orders/{order_ref}/events"): Role.viewer,
    ("GET", "/v1/exports/orders.csv"): Role.viewer,
    ("GET", "/v1/reports/money"): Role.viewer,
    # Webhook endpoints of the caller's merchant; every change is audited.
    ("POST", "/v1/webhook-endpoints"): Role.shop,
    ("GET", "/v1/webhook-endpoints"): Role.shop,
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): Role.shop,
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): Role.shop,
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): Role.shop,
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): Role.shop,
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): Role.shop,
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/resend"): Role.shop,
    # Swagger UI: public, and served at all only with ESCROW_DOCS=true (these tests set it).
    ("GET", "/docs"): None,
    ("GET", "/docs/oauth2-redirect"): None,
    # Cotpay's callbacks carry no API key: the URL's HMAC signature is checked instead.
    ("POST", "/ipn/{order_ref}/{step}"): None,
    ("GET", "/healthz"): None,
}
