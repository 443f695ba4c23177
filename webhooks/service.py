"""Managing webhook endpoints and their deliveries: what the gateway routes and the CLI call
(docs/webhooks.md, docs/http-api.md, docs/cli.md).

Every refusal is a ``WebhookError`` with an HTTP status and a stable code; a store that cannot
be reached raises ``store.errors.StoreUnavailable`` (503). Endpoints belong to a merchant
(``default`` until merchants have their own keys); another merchant's endpoint is not found.
"""

from __future__ import annotations

import asyncio
import secrets as token
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from runtime.codec import CodecSettings
from store.api import OrderStore
from store.db import Database
from store.models import DEFAULT_MERCHANT
from store.settings import StoreSettings
from webhooks import repo
from webhooks.events import parse_event_types
from webhooks.models import (
    Delivery,
    DeliveryList,
    DeliveryStatus,
    DisabledReason,
    Endpoint,
    EndpointCreate,
    EndpointCreated,
    EndpointUpdate,
    SecretRotated,
)
from webhooks.safety import UrlRefused, check_resolved, check_url
from webhooks.secrets import SecretBox, new_secret
from webhooks.settings import WebhookSettings

ENDPOINT_ID_PREFIX = "we_"
MAX_DELIVERY_PAGE = 500


class WebhookError(Exception):
    """A refused webhook request: ``status`` (HTTP) and a stable ``code``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _not_found(endpoint_id: str) -> WebhookError:
    return WebhookError(404, "endpoint_not_found", f"no webhook endpoint {endpoint_id}")


def utc_now() -> datetime:
    return datetime.now(UTC)


class WebhookService:
    def __init__(
        self,
        db: Database,
        settings: WebhookSettings | None = None,
        *,
        box: SecretBox | None = None,
        clock: Any = utc_now,
    ) -> None:
        self.db = db
        self.settings = settings or WebhookSettings()
        self.box = box or SecretBox(None)
        self.clock = clock
        self._ready = False
        self._lock = asyncio.Lock()

    @classmethod
    def open(cls, url: str | None = None, settings: WebhookSettings | None = None) -> Self:
        """Over ``ESCROW_DATABASE_URL`` (or ``url``), secrets sealed with ``ESCROW_CODEC_KEYS``.
        Opening does not connect."""
        store = StoreSettings()
        if url is not None:
            store = store.model_copy(update={"database_url": url})
        return cls(
            Database.from_settings(store),
            settings or WebhookSettings(),
            box=SecretBox(CodecSettings().key_ring()),
        )

    async def close(self) -> None:
        await self.db.close()

    async def ensure_ready(self) -> None:
        """Once: the schema (SQLite creates or upgrades it; PostgreSQL must be migrated)."""
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                await OrderStore(self.db).ensure_schema()
                self._ready = True

    # --- endpoints ---------------------------------------------------------------------------

    async def _checked_url(self, url: str) -> str:
        try:
            checked = check_url(url, self.settings)
            await check_resolved(checked, self.settings)
        except UrlRefused as err:
            raise WebhookError(422, err.code, err.message) from None
        return checked

    @staticmethod
    def _event_types(values: list[str] | None) -> list[str]:
        try:
            return parse_event_types(values)
        except ValueError as err:
            raise WebhookError(
                422, "unknown_event_type", f"unknown event type(s): {err} (docs/webhooks.md)"
            ) from None

    async def create(
        self, body: EndpointCreate, merchant: str = DEFAULT_MERCHANT
    ) -> EndpointCreated:
        await self.ensure_ready()
        url = await self._checked_url(body.url)
        event_types = self._event_types(body.event_types)
        if await repo.count_endpoints(self.db, merchant) >= self.settings.max_endpoints:
            raise WebhookError(
                422,
                "too_many_endpoints",
                f"at most {self.settings.max_endpoints} webhook endpoints"
                " (ESCROW_WEBHOOK_MAX_ENDPOINTS): remove one first",
            )
        endpoint_id = ENDPOINT_ID_PREFIX + token.token_hex(12)
        secret = new_secret()
        now = self.clock()
        await repo.insert_endpoint(
            self.db,
            {
                "id": endpoint_id,
                "merchant": merchant,
                "url": url,
                "description": body.description,
                "event_types": event_types,
                "enabled": True,
                "secret": self.box.seal(secret, endpoint_id),
                "consecutive_failures": 0,
                "created_at": now,
                "updated_at": now,
            },
        )
        endpoint = await self.get(endpoint_id, merchant)
        return EndpointCreated(**endpoint.model_dump(), secret=secret)

    async def list_endpoints(self, merchant: str = DEFAULT_MERCHANT) -> list[Endpoint]:
        await self.ensure_ready()
        return [row.public() for row in await repo.list_endpoints(self.db, merchant)]

    async def _row(self, endpoint_id: str, merchant: str) -> repo.EndpointRow:
        await self.ensure_ready()
        row = await repo.get_endpoint(self.db, endpoint_id, merchant)
        if row is None:
            raise _not_found(endpoint_id)
        return row

    async def get(self, endpoint_id: str, merchant: str = DEFAULT_MERCHANT) -> Endpoint:
        return (await self._row(endpoint_id, merchant)).public()

    async def update(
        self, endpoint_id: str, body: EndpointUpdate, merchant: str = DEFAULT_MERCHANT
    ) -> Endpoint:
        row = await self._row(endpoint_id, merchant)
        now = self.clock()
        values: dict[str, Any] = {"updated_at": now}
        if body.url is not None:
            values["url"] = await self._checked_url(body.url)
        if body.event_types is not None:
            values["event_types"] = self._event_types(body.event_types)
        if body.description is not None:
            values["description"] = body.description
        if body.enabled is True and not row.enabled:
            # A fresh start: the failure streak that disabled it is forgotten.
            values.update(
                enabled=True,
                disabled_reason=None,
                disabled_at=None,
                consecutive_failures=0,
                failing_since=None,
            )
        elif body.enabled is False and row.enabled:
            values.update(
                enabled=False, disabled_reason=DisabledReason.MANUAL.value, disabled_at=now
            )
        if not await repo.update_endpoint(self.db, endpoint_id, merchant, values):
            raise _not_found(endpoint_id)
        return await self.get(endpoint_id, merchant)

    async def delete(self, endpoint_id: str, merchant: str = DEFAULT_MERCHANT) -> None:
        await self.ensure_ready()
        if not await repo.delete_endpoint(self.db, endpoint_id, merchant):
            raise _not_found(endpoint_id)

    async def rotate_secret(
        self,
        endpoint_id: str,
        merchant: str = DEFAULT_MERCHANT,
        *,
        overlap: timedelta | None = None,
    ) -> SecretRotated:
        """A new secret; the current one keeps signing alongside it for ``overlap`` (default
        ``ESCROW_WEBHOOK_ROTATION_OVERLAP``, 24 h; 0 drops it at once, for a leaked secret)."""
        row = await self._row(endpoint_id, merchant)
        overlap = self.settings.rotation_overlap if overlap is None else overlap
        now = self.clock()
        secret = new_secret()
        expires = now + overlap if overlap > timedelta(0) else None
        await repo.update_endpoint(
            self.db,
            endpoint_id,
            merchant,
            {
                "secret": self.box.seal(secret, endpoint_id),
                "previous_secret": row.secret if expires is not None else None,
                "previous_secret_expires_at": expires,
                "updated_at": now,
            },
        )
        return SecretRotated(id=endpoint_id, secret=secret, previous_secret_expires_at=expires)

    # --- deliveries --------------------------------------------------------------------------

    async def deliveries(
        self,
        endpoint_id: str,
        merchant: str = DEFAULT_MERCHANT,
        *,
        status: DeliveryStatus | None = None,
        order_ref: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> DeliveryList:
        await self._row(endpoint_id, merchant)
        if not 1 <= limit <= MAX_DELIVERY_PAGE:
            raise WebhookError(422, "invalid_limit", f"limit must be 1..{MAX_DELIVERY_PAGE}")
        rows, next_before = await repo.list_deliveries(
            self.db, endpoint_id, status=status, order_ref=order_ref, before=before, limit=limit
        )
        return DeliveryList(deliveries=rows, next_before=next_before)

    async def resend(
        self, endpoint_id: str, delivery_id: int, merchant: str = DEFAULT_MERCHANT
    ) -> Delivery:
        """Send a delivery again now (with the failed ones of the same order before it)."""
        await self._row(endpoint_id, merchant)
        if await repo.get_delivery(self.db, endpoint_id, delivery_id) is None:
            raise WebhookError(
                404, "delivery_not_found", f"no delivery {delivery_id} for endpoint {endpoint_id}"
            )
        now = self.clock()
        if not await repo.resend(
            self.db, endpoint_id, delivery_id, now=now, window=self.settings.retry_window
        ):
            raise WebhookError(
                409, "delivery_in_flight", "the delivery is being sent right now: try later"
            )
        found = await repo.get_delivery(self.db, endpoint_id, delivery_id)
        assert found is not None
        return found

    async def resend_failed(self, endpoint_id: str, merchant: str = DEFAULT_MERCHANT) -> list[int]:
        """Queue every failed delivery of the endpoint again (oldest first, so each order's
        events go in order); returns their ids."""
        await self._row(endpoint_id, merchant)
        ids: list[int] = []
        before: int | None = None
        while True:
            page, before = await repo.list_deliveries(
                self.db,
                endpoint_id,
                status=DeliveryStatus.FAILED,
                before=before,
                limit=MAX_DELIVERY_PAGE,
            )
            ids.extend(d.id for d in page)
            if before is None:
                break
        now = self.clock()
        for delivery_id in sorted(ids):
            await repo.resend(
                self.db, endpoint_id, delivery_id, now=now, window=self.settings.retry_window
            )
        return sorted(ids)
