"""``audit(request, action, ...)``: one audit event for what the caller just did
(docs/security.md, "Audit").

Routes call it after an operator action, a webhook endpoint change or anything else an operator
must be able to trace: it records the caller's key (its name and id, never the key), merchant,
the action and its target in the store's ``audit_events``. Without a store it only logs the
event; when the store is down it logs an error with the event, and the request is not failed
(the action has already happened; the order's own timeline keeps it too).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import Request

from starter.gateway.auth import Principal
from store.access import AccessStore
from store.access_models import AuditEvent
from store.errors import StoreUnavailable

log = structlog.get_logger("cotpay_escrow.audit")


def audit_event(
    principal: Principal | None,
    action: str,
    *,
    target: str = "",
    detail: str = "",
    data: dict[str, Any] | None = None,
    merchant: str | None = None,
) -> AuditEvent:
    return AuditEvent(
        time=datetime.now(UTC),
        actor=principal.actor if principal is not None else "anonymous",
        key_id=principal.key_id if principal is not None else None,
        merchant=merchant or (principal.merchant if principal is not None else None),
        action=action,
        target=target,
        detail=detail,
        data=data,
    )


async def audit(
    request: Request,
    action: str,
    *,
    target: str = "",
    detail: str = "",
    data: dict[str, Any] | None = None,
    merchant: str | None = None,
) -> AuditEvent:
    """Record ``action`` (``order.operator.release``, ``webhook_endpoint.create``, ...) done by
    the request's caller on ``target``; ``data`` must hold no secret."""
    principal = getattr(request.state, "principal", None)
    event = audit_event(
        principal if isinstance(principal, Principal) else None,
        action,
        target=target,
        detail=detail,
        data=data,
        merchant=merchant,
    )
    fields = event.model_dump(mode="json", exclude={"id", "time"})
    access: AccessStore | None = getattr(request.app.state.gateway, "access", None)
    if access is None:
        log.info("audit", **fields)
        return event
    try:
        stored = await access.record_audit(event)
    except StoreUnavailable:
        log.error("audit.not_stored", **fields)
        return event
    log.info("audit", id=stored.id, **fields)
    return stored
