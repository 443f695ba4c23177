"""Connecting to Temporal: one way for every client and worker of the project.

Where and how to connect comes from the SDK's environment configuration
(``temporalio.envconfig``), the variables and profile file the Temporal CLI reads:
``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS``,
``TEMPORAL_TLS_CLIENT_CERT_PATH``, ``TEMPORAL_TLS_CLIENT_KEY_PATH``,
``TEMPORAL_TLS_SERVER_CA_CERT_PATH``, ``TEMPORAL_TLS_SERVER_NAME`` (and the ``*_DATA`` forms),
``TEMPORAL_GRPC_META_*``, ``TEMPORAL_PROFILE`` and ``TEMPORAL_CONFIG_FILE``. TLS is on with an
API key (Temporal Cloud) or any TLS setting. ``TEMPORAL_TASK_QUEUE`` is the project's own.

The variables of earlier releases, ``TEMPORAL_TLS_CERT_FILE``, ``TEMPORAL_TLS_KEY_FILE`` and
``TEMPORAL_TLS_CA_FILE``, still work for one release and log ``temporal.deprecated_variable``
(docs/deployment.md). The client uses the project's data converter (pydantic JSON, plus the
payload codec when ``ESCROW_CODEC_KEYS`` is set, ``runtime/codec.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import structlog
from temporalio.client import Client, Interceptor
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfig, ClientConnectConfig
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from runtime.codec import CodecSettings, escrow_data_converter
from workflows.models import TASK_QUEUE

log = structlog.get_logger(__name__)

DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_NAMESPACE = "default"
TASK_QUEUE_VARIABLE = "TEMPORAL_TASK_QUEUE"

# Old name -> the envconfig name that replaces it (accepted until the next release).
DEPRECATED_VARIABLES: Mapping[str, str] = {
    "TEMPORAL_TLS_CERT_FILE": "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_KEY_FILE": "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_CA_FILE": "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
}


class TemporalConfigError(ValueError):
    """The Temporal configuration cannot be read: an unknown profile, a missing TLS file."""


@dataclass(frozen=True)
class TemporalConfig:
    """Where the service's clients and workers connect, and the task queue they use.

    ``TemporalConfig.from_env()`` reads the environment (and the Temporal CLI's profile file);
    the constructor is for code that knows the address, such as tests and ``cotpay-escrow run``.
    The API key and TLS material are kept out of ``repr``.
    """

    address: str = DEFAULT_ADDRESS
    namespace: str = DEFAULT_NAMESPACE
    task_queue: str = TASK_QUEUE
    api_key: str | None = field(default=None, repr=False)
    tls: bool | TLSConfig = field(default=False, repr=False)
    rpc_metadata: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TemporalConfig:
        """The configuration ``environ`` (default: this process's environment) describes."""
        env = upgrade_deprecated(dict(os.environ if environ is None else environ))
        try:
            connect = ClientConfig.load_client_connect_config(override_env_vars=env)
        except (RuntimeError, OSError) as exc:  # the SDK's ConfigError is a RuntimeError
            raise TemporalConfigError(f"Temporal configuration: {exc}") from exc
        return cls.from_connect_config(connect, task_queue=env.get(TASK_QUEUE_VARIABLE) or None)

    @classmethod
    def from_connect_config(
        cls, connect: ClientConnectConfig, *, task_queue: str | None = None
    ) -> TemporalConfig:
        return cls(
            address=connect.get("target_host") or DEFAULT_ADDRESS,
            namespace=connect.get("namespace") or DEFAULT_NAMESPACE,
            task_queue=task_queue or TASK_QUEUE,
            api_key=connect.get("api_key"),
            tls=connect.get("tls", False),
            rpc_metadata=dict(connect.get("rpc_metadata", {})),
        )

    def with_namespace(self, namespace: str) -> TemporalConfig:
        return dataclasses.replace(self, namespace=namespace)

    def connect_config(self) -> ClientConnectConfig:
        """The keyword arguments of ``Client.connect`` this configuration stands for."""
        config = ClientConnectConfig(
            target_host=self.address, namespace=self.namespace, tls=self.tls
        )
        if self.api_key is not None:
            config["api_key"] = self.api_key
        if self.rpc_metadata:
            config["rpc_metadata"] = self.rpc_metadata
        return config


def upgrade_deprecated(env: dict[str, str]) -> dict[str, str]:
    """Copy each deprecated variable to its envconfig name (unless that is set), with a warning.

    Returns ``env`` itself, changed in place.
    """
    for old, new in DEPRECATED_VARIABLES.items():
        value = env.get(old)
        if not value:
            continue
        ignored = bool(env.get(new))
        if not ignored:
            env[new] = value
        message = f"{old} is deprecated and will be removed in the next release: use {new}" + (
            f" ({new} is set, so {old} is ignored)" if ignored else ""
        )
        warnings.warn(message, DeprecationWarning, stacklevel=3)
        log.warning("temporal.deprecated_variable", variable=old, use=new, ignored=ignored)
    return env


async def connect(
    config: TemporalConfig,
    *,
    data_converter: DataConverter | None = None,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
) -> Client:
    """A client on ``config`` with the project's data converter (``CodecSettings()`` keys)."""
    return await Client.connect(
        **config.connect_config(),
        data_converter=data_converter or escrow_data_converter(CodecSettings()),
        interceptors=interceptors,
        runtime=runtime,
    )


async def release_client() -> None:
    """Drop unreferenced Temporal clients while the loop still runs: the SDK's native client,
    freed during interpreter shutdown, can abort the process (PyGILState_Release) after the
    output. Call it last in a short-lived command."""
    gc.collect()
    await asyncio.sleep(0.05)
