"""Webhooks: tell the shop about every status change of its orders (docs/webhooks.md).

The store is the outbox: events come from ``order_events`` and deliveries live in the store.

- ``webhooks.events``: event types, ids and the body (pure);
- ``webhooks.models``: endpoints and deliveries as the API shows them;
- ``webhooks.settings``: ``ESCROW_WEBHOOK_*`` and ``ESCROW_ENV``;
- ``webhooks.secrets``: signing secrets (sealed at rest) and Standard Webhooks signatures;
- ``webhooks.safety``, ``webhooks.sender``: the URL rules and one bounded request;
- ``webhooks.backoff``: the retry schedule (pure);
- ``webhooks.repo``: the webhook tables;
- ``webhooks.dispatcher``: the loop that sends (in the worker, or alone);
- ``webhooks.service``: managing endpoints, for the gateway and the CLI;
- ``webhooks.metrics``: its Prometheus series.

Imports ``store``, ``runtime`` and ``workflows`` models; never ``starter``, ``activities`` or
Temporal.
"""
