"""Prometheus series of the webhook dispatcher (docs/alerting.md, docs/webhooks.md).

They live in ``prometheus_client``'s default registry, so the worker serves them on
``ESCROW_METRICS_PORT`` with the other service series (and ``cotpay-escrow webhooks dispatch``
does too). No label carries an endpoint id or URL: the logs do.
"""

from __future__ import annotations

import prometheus_client

EVENTS_TAKEN = prometheus_client.Counter(
    "escrow_webhook_events", "Order status changes taken from the store as webhook events"
)
ATTEMPTS = prometheus_client.Counter(
    "escrow_webhook_attempts",
    "Webhook requests by outcome: delivered, http_status, redirect, timeout, network, refused,"
    " too_large",
    ["outcome"],
)
ATTEMPT_SECONDS = prometheus_client.Histogram(
    "escrow_webhook_attempt_seconds",
    "Duration of webhook requests",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30),
)
DELIVERIES_FAILED = prometheus_client.Counter(
    "escrow_webhook_deliveries_failed",
    "Deliveries given up (retry window over, or blocked by an earlier failed event of the"
    " order): visible and resendable",
)
ENDPOINTS_DISABLED = prometheus_client.Counter(
    "escrow_webhook_endpoints_auto_disabled",
    "Endpoints disabled automatically after failing for too long (docs/webhooks.md)",
)
PENDING = prometheus_client.Gauge(
    "escrow_webhook_pending", "Deliveries waiting to be sent (including retries)"
)
OLDEST_PENDING = prometheus_client.Gauge(
    "escrow_webhook_oldest_pending_seconds", "Age of the oldest pending delivery"
)
TAKE_LAG = prometheus_client.Gauge(
    "escrow_webhook_take_lag_seconds",
    "Age of the oldest status change the dispatcher took in its last pass (0: caught up)",
)
LAST_PASS = prometheus_client.Gauge(
    "escrow_webhook_dispatcher_last_pass_timestamp_seconds",
    "When a dispatcher last completed a pass over the store (Unix time)",
)
