"""Configuration of the Cotpay client, from ``COTPAY_*`` environment variables.

See docs/cotpay-protocol.md (the client) and docs/cli.md (the variables).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CotpaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COTPAY_", extra="ignore")

    base_url: str = "http://127.0.0.1:8090"
    app_id: str = ""
    access_token: SecretStr = SecretStr("")
    # Cotpay's public key seals our requests; our (merchant) private key opens its answers.
    public_key_file: Path | None = None
    private_key_file: Path | None = None
    envelope: Literal["encrypted", "plain"] = "encrypted"
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=20.0, gt=0)
    max_connections: int = Field(default=50, ge=1)

    @property
    def request_timeout(self) -> float:
        """Worst case for one HTTP call; activity timeouts are set above this."""
        return self.connect_timeout + self.read_timeout


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; blank lines, ``#`` comments and ``export`` prefixes are allowed."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values
