"""Where the order store lives: ``ESCROW_DATABASE_URL`` (docs/store.md)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///.data/escrow.db"


class StoreSettings(BaseSettings):
    """``ESCROW_DATABASE_URL``: ``sqlite+aiosqlite:///path`` (relative to the working
    directory) or ``postgresql+asyncpg://user:password@host:5432/db``."""

    model_config = SettingsConfigDict(env_prefix="ESCROW_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = Field(default=5, ge=1, le=100)
    # Seconds to wait for a connection (and, on SQLite, for a lock) before the store is
    # reported unavailable.
    database_timeout: float = Field(default=5.0, gt=0, le=120)
