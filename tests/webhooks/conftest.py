"""Webhook tests: an order store on a fresh SQLite file (PostgreSQL claims are tested in
tests/store), seeded exactly as the escrow workflow writes it (``OrderStore.record``), a
controllable clock, and settings with short timeouts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from store import migrate
from store.api import OrderStore
from store.models import StoreEvent
from tests.store.factories import view, write
from webhooks.dispatcher import Dispatcher
from webhooks.models import EndpointCreate, EndpointCreated
from webhooks.secrets import SecretBox
from webhooks.service import WebhookService
from webhooks.settings import WebhookSettings
from workflows.models import Attention, EscrowStatus

S = EscrowStatus
# The status entries of an order that is paid out, in timeline order.
PAID_OUT_PATH = [S.AWAITING_PAYMENT, S.HELD, S.DELIVERED, S.PAYING_OUT, S.PAID_OUT]


class FakeClock:
    """The dispatcher's clock: moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by

    def set(self, moment: datetime) -> None:
        self.now = moment


def fast_settings(**overrides: object) -> WebhookSettings:
    values: dict[str, object] = {
        "env": "development",
        "poll_interval": 0.05,
        "connect_timeout": 2.0,
        "read_timeout": 3.0,
        "attempt_timeout": 4.0,
        "lease": 10.0,
        "retry_first_delay": timedelta(milliseconds=50),
        "retry_max_delay": timedelta(milliseconds=400),
    }
    values.update(overrides)
    return WebhookSettings.model_validate(values)


@pytest.fixture
async def store_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hooks.db'}"
    await migrate.upgrade(url)
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[OrderStore]:
    opened = OrderStore.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def service(store: OrderStore) -> AsyncIterator[WebhookService]:
    yield WebhookService(store.db, fast_settings())


class Seeder:
    """Writes orders the way the escrow workflow does: each status entry is a timeline entry
    of kind ``status`` numbered from 1, with the order view of that moment."""

    def __init__(self, store: OrderStore) -> None:
        self.store = store
        self.seqs: dict[str, int] = {}

    async def status(
        self,
        ref: str,
        *statuses: EscrowStatus,
        merchant: str = "default",
        at: datetime | None = None,
    ) -> list[int]:
        """Record the order moving through ``statuses``; returns their seqs."""
        start = self.seqs.get(ref, 0)
        time = at or datetime.now(UTC)
        events = [
            StoreEvent(
                seq=start + i + 1,
                time=time + timedelta(milliseconds=i),
                kind="status",
                status=status,
                detail=f"to {status.value}",
            )
            for i, status in enumerate(statuses)
        ]
        last = statuses[-1]
        extra: dict[str, Any] = {}
        if last is S.NEEDS_ATTENTION:
            extra["attention"] = Attention(reason="payout failed (10800)", code=10800, since=time)
        if last is S.AWAITING_PAYMENT:
            extra["payment"] = "https://pay.example/qr/123"
        await self.store.record(
            write(ref, last, events, created_at=time, merchant=merchant, **extra)
        )
        self.seqs[ref] = start + len(statuses)
        return [e.seq for e in events]

    async def other(self, ref: str, kind: str = "ipn") -> None:
        """A timeline entry that is not a status change (sends nothing)."""
        seq = self.seqs.get(ref, 0) + 1
        current = await self.store.get_row(ref)
        status = current.status if current else S.AWAITING_PAYMENT
        event = StoreEvent(seq=seq, time=datetime.now(UTC), kind=kind, status=status)
        await self.store.record(write(ref, status, [event]))
        self.seqs[ref] = seq


@pytest.fixture
def seed(store: OrderStore) -> Seeder:
    return Seeder(store)


async def add_endpoint(
    service: WebhookService, url: str, *types: str, description: str = ""
) -> EndpointCreated:
    return await service.create(
        EndpointCreate(url=url, event_types=list(types) or None, description=description)
    )


def dispatcher(
    store: OrderStore,
    settings: WebhookSettings | None = None,
    **kwargs: object,
) -> Dispatcher:
    kwargs.setdefault("sweep_every", 0.0)
    return Dispatcher(store.db, settings or fast_settings(), box=SecretBox(None), **kwargs)  # type: ignore[arg-type]


__all__ = ["PAID_OUT_PATH", "FakeClock", "Seeder", "add_endpoint", "dispatcher", "view"]
