"""``/v1/webhook-endpoints``: where a shop receives its order events, the delivery attempts, and
resending; plus the ``webhooks`` section of the OpenAPI document (docs/webhooks.md,
docs/http-api.md).

Each route calls one ``WebhookService`` method; its ``WebhookError`` becomes a JSON error with
its status and stable code, a store that cannot be reached a 503 ``store_unavailable``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Header, Path, Query, Response
from pydantic import create_model

from starter.gateway.deps import Owner, Webhooks
from starter.gateway.errors import ApiError
from store.errors import StoreUnavailable
from webhooks.events import EVENT_DESCRIPTIONS, EventType, WebhookEvent
from webhooks.models import (
    Delivery,
    DeliveryList,
    DeliveryStatus,
    Endpoint,
    EndpointCreate,
    EndpointCreated,
    EndpointList,
    EndpointUpdate,
    RotateSecret,
    SecretRotated,
)
from webhooks.service import MAX_DELIVERY_PAGE, WebhookError

router = APIRouter(prefix="/v1", tags=["webhooks"])

EndpointId = Annotated[str, Path(pattern=r"^we_[0-9a-f]{1,37}$", max_length=40)]


@contextlib.contextmanager
def _answers() -> Iterator[None]:
    try:
        yield
    except WebhookError as err:
        raise ApiError(err.status, err.code, err.message) from None
    except StoreUnavailable:
        raise ApiError(503, "store_unavailable", "the order store is unavailable") from None


@router.post("/webhook-endpoints", status_code=201, response_model=EndpointCreated)
async def create_endpoint(
    body: EndpointCreate, hooks: Webhooks, merchant: Owner
) -> EndpointCreated:
    """Register an endpoint. The answer carries the signing secret: it is shown only here."""
    with _answers():
        return await hooks.create(body, merchant)


@router.get("/webhook-endpoints", response_model=EndpointList)
async def list_endpoints(hooks: Webhooks, merchant: Owner) -> EndpointList:
    with _answers():
        return EndpointList(endpoints=await hooks.list_endpoints(merchant))


@router.get("/webhook-endpoints/{endpoint_id}", response_model=Endpoint)
async def get_endpoint(endpoint_id: EndpointId, hooks: Webhooks, merchant: Owner) -> Endpoint:
    with _answers():
        return await hooks.get(endpoint_id, merchant)


@router.patch("/webhook-endpoints/{endpoint_id}", response_model=Endpoint)
async def update_endpoint(
    endpoint_id: EndpointId, body: EndpointUpdate, hooks: Webhooks, merchant: Owner
) -> Endpoint:
    """Enable or disable, change the event types, the URL or the description."""
    with _answers():
        return await hooks.update(endpoint_id, body, merchant)


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=204)
async def delete_endpoint(endpoint_id: EndpointId, hooks: Webhooks, merchant: Owner) -> Response:
    """Remove the endpoint and its deliveries."""
    with _answers():
        await hooks.delete(endpoint_id, merchant)
    return Response(status_code=204)


@router.post("/webhook-endpoints/{endpoint_id}/rotate-secret", response_model=SecretRotated)
async def rotate_secret(
    endpoint_id: EndpointId,
    hooks: Webhooks,
    merchant: Owner,
    body: RotateSecret | None = None,
) -> SecretRotated:
    """A new signing secret (shown only here); the old one keeps signing alongside it for 24 h
    (``overlapHours``)."""
    overlap = None
    if body is not None and body.overlap_hours is not None:
        overlap = timedelta(hours=body.overlap_hours)
    with _answers():
        return await hooks.rotate_secret(endpoint_id, merchant, overlap=overlap)


@router.get("/webhook-endpoints/{endpoint_id}/deliveries", response_model=DeliveryList)
async def list_deliveries(
    endpoint_id: EndpointId,
    hooks: Webhooks,
    merchant: Owner,
    status: DeliveryStatus | None = None,
    order_ref: Annotated[
        str | None, Query(alias="orderRef", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    ] = None,
    before: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_DELIVERY_PAGE)] = 50,
) -> DeliveryList:
    """The endpoint's deliveries, newest first, each with its last attempt (status code,
    latency, error) and, while pending, the next attempt's time."""
    with _answers():
        return await hooks.deliveries(
            endpoint_id, merchant, status=status, order_ref=order_ref, before=before, limit=limit
        )


@router.post(
    "/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/resend",
    status_code=202,
    response_model=Delivery,
)
async def resend_delivery(
    endpoint_id: EndpointId,
    delivery_id: Annotated[int, Path(ge=1)],
    hooks: Webhooks,
    merchant: Owner,
) -> Delivery:
    """Send the delivery again now (with the failed ones of the same order before it, in
    order). 409 ``delivery_in_flight`` while it is being sent."""
    with _answers():
        return await hooks.resend(endpoint_id, delivery_id, merchant)


# --- the OpenAPI `webhooks` section ----------------------------------------------------------


def _event_model(event_type: EventType) -> type[WebhookEvent]:
    name = "".join(part.title() for part in event_type.value.replace(".", "_").split("_"))
    model: type[WebhookEvent] = create_model(
        f"{name}Event",
        __base__=WebhookEvent,
        type=(Literal[event_type.value], ...),  # type: ignore[arg-type]
    )
    model.__doc__ = EVENT_DESCRIPTIONS[event_type]
    return model


def _doc_operation(model: type[WebhookEvent]) -> Any:
    async def receive(
        body: WebhookEvent,
        webhook_id: Annotated[
            str, Header(alias="webhook-id", description="The event id: the same on every retry")
        ],
        webhook_timestamp: Annotated[
            str,
            Header(
                alias="webhook-timestamp", description="Unix seconds when this attempt was sent"
            ),
        ],
        webhook_signature: Annotated[
            str,
            Header(
                alias="webhook-signature",
                description="Space-separated `v1,<base64 HMAC-SHA256>` signatures (Standard"
                " Webhooks); two during a secret rotation",
            ),
        ],
    ) -> None:
        """Documentation only: the shop's endpoint receives this."""

    receive.__annotations__["body"] = model  # the event's own schema (its `type` a constant)
    return receive


def document_webhooks(app: FastAPI) -> None:
    """List every event type and its payload in the OpenAPI document's ``webhooks`` section."""
    for event_type in EventType:
        model = _event_model(event_type)
        app.webhooks.add_api_route(
            event_type.value,
            _doc_operation(model),
            methods=["POST"],
            summary=event_type.value,
            description=EVENT_DESCRIPTIONS[event_type]
            + "\n\nSigned per Standard Webhooks; answer 2xx within 10 s. Retried with backoff"
            " for 3 days on anything else (docs/webhooks.md).",
            status_code=204,
            responses={204: {"description": "Received (any 2xx will do)"}},
            name=f"webhook_{event_type.name.lower()}",
            operation_id=f"webhook_{event_type.name.lower()}",
        )
