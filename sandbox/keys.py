"""The sandbox's key material and the ``credentials.env`` that points a client at it.

On first start in a keys directory we write Cotpay's and the merchant's RSA key pairs, a random
app id and access token; later starts reuse them. ``credentials.env`` is rewritten on every start
because the base URL (host, port) may differ; its app id and token are kept. Private keys and
``credentials.env`` are written with mode 0600, the directory with 0700.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from cotpay import envelope
from cotpay.settings import CotpaySettings, read_env_file

COTPAY_PRIVATE = "cotpay_private.pem"
COTPAY_PUBLIC = "cotpay_public.pem"
MERCHANT_PRIVATE = "merchant_private.pem"
MERCHANT_PUBLIC = "merchant_public.pem"
CREDENTIALS = "credentials.env"


@dataclass(frozen=True)
class SandboxKeys:
    directory: Path
    app_id: str
    access_token: str
    cotpay_private: rsa.RSAPrivateKey
    merchant_public: rsa.RSAPublicKey

    @property
    def credentials_file(self) -> Path:
        return self.directory / CREDENTIALS

    @property
    def cotpay_public_file(self) -> Path:
        return self.directory / COTPAY_PUBLIC

    @property
    def merchant_private_file(self) -> Path:
        return self.directory / MERCHANT_PRIVATE

    def credential_lines(self, base_url: str, envelope_mode: str) -> dict[str, str]:
        return {
            "COTPAY_BASE_URL": base_url,
            "COTPAY_APP_ID": self.app_id,
            "COTPAY_ACCESS_TOKEN": self.access_token,
            "COTPAY_PUBLIC_KEY_FILE": str(self.cotpay_public_file),
            "COTPAY_PRIVATE_KEY_FILE": str(self.merchant_private_file),
            "COTPAY_ENVELOPE": envelope_mode,
        }

    def write_credentials(self, base_url: str, envelope_mode: str) -> Path:
        text = "".join(
            f"{k}={v}\n" for k, v in self.credential_lines(base_url, envelope_mode).items()
        )
        _write_private(self.credentials_file, text.encode())
        return self.credentials_file

    def cotpay_settings(self, base_url: str, envelope_mode: str) -> CotpaySettings:
        """Client settings for this sandbox (environment variables are not consulted)."""
        return CotpaySettings.model_validate(
            {
                "base_url": base_url,
                "app_id": self.app_id,
                "access_token": self.access_token,
                "public_key_file": self.cotpay_public_file,
                "private_key_file": self.merchant_private_file,
                "envelope": envelope_mode,
            }
        )


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def _write_public(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o644)


def _pair(directory: Path, private_name: str, public_name: str) -> rsa.RSAPrivateKey:
    private_path = directory / private_name
    public_path = directory / public_name
    if private_path.exists():
        key = envelope.load_private_key(private_path.read_bytes())
    else:
        key = envelope.generate_private_key()
        _write_private(private_path, envelope.private_pem(key))
    if not public_path.exists():
        _write_public(public_path, envelope.public_pem(key.public_key()))
    return key


def ensure_keys(directory: Path) -> SandboxKeys:
    """Load the sandbox's keys and credentials from ``directory``, creating what is missing."""
    directory = directory.expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cotpay_key = _pair(directory, COTPAY_PRIVATE, COTPAY_PUBLIC)
    _pair(directory, MERCHANT_PRIVATE, MERCHANT_PUBLIC)  # the sandbox keeps only its public key
    merchant_public = envelope.load_public_key((directory / MERCHANT_PUBLIC).read_bytes())
    credentials = directory / CREDENTIALS
    env = read_env_file(credentials) if credentials.exists() else {}
    app_id = env.get("COTPAY_APP_ID") or f"sbx-{secrets.token_hex(4)}"
    token = env.get("COTPAY_ACCESS_TOKEN") or secrets.token_urlsafe(32)
    return SandboxKeys(
        directory=directory,
        app_id=app_id,
        access_token=token,
        cotpay_private=cotpay_key,
        merchant_public=merchant_public,
    )
