"""One way to connect to Temporal, for every client and worker of the project.

Uses the project's data converter (pydantic JSON, plus the payload codec when
``ESCROW_CODEC_KEYS`` is set, ``starter/codec.py``). TLS when certificate files are configured
(mTLS, self-hosted or Temporal Cloud) or when an API key is (Temporal Cloud API keys need TLS).
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.client import Client, Interceptor, TLSConfig
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime

from starter.codec import CodecSettings, escrow_data_converter
from starter.settings import TemporalSettings


def tls_config(settings: TemporalSettings) -> TLSConfig | bool:
    files = (settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file)
    if any(f is not None for f in files):
        return TLSConfig(
            client_cert=settings.tls_cert_file.read_bytes() if settings.tls_cert_file else None,
            client_private_key=(
                settings.tls_key_file.read_bytes() if settings.tls_key_file else None
            ),
            server_root_ca_cert=settings.tls_ca_file.read_bytes() if settings.tls_ca_file else None,
        )
    return settings.api_key is not None


async def connect(
    settings: TemporalSettings,
    *,
    data_converter: DataConverter | None = None,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
) -> Client:
    api_key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        api_key=api_key,
        tls=tls_config(settings),
        data_converter=data_converter or escrow_data_converter(CodecSettings()),
        interceptors=interceptors,
        runtime=runtime,
    )
