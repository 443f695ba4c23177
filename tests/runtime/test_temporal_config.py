"""``runtime.temporal``: the Temporal CLI's environment configuration, old names, the converter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import TLSConfig
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.testing import WorkflowEnvironment

from runtime.codec import escrow_data_converter
from runtime.temporal import DEPRECATED_VARIABLES, TemporalConfig, TemporalConfigError, connect
from workflows.models import TASK_QUEUE


def pem(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_defaults_are_the_local_dev_server_without_tls() -> None:
    config = TemporalConfig.from_env({})
    assert (config.address, config.namespace, config.task_queue) == (
        "127.0.0.1:7233",
        "default",
        TASK_QUEUE,
    )
    assert config.tls is False
    assert config.api_key is None


def test_tls_off_by_default_on_with_api_key_or_files(tmp_path: Path) -> None:
    assert TemporalConfig.from_env({}).tls is False
    assert TemporalConfig.from_env({"TEMPORAL_API_KEY": "k"}).tls is True
    ca = pem(tmp_path, "ca.pem", b"CA")
    config = TemporalConfig.from_env({"TEMPORAL_TLS_SERVER_CA_CERT_PATH": ca})
    assert isinstance(config.tls, TLSConfig)
    assert config.tls.server_root_ca_cert == b"CA"
    assert config.tls.client_cert is None


def test_the_temporal_cli_variables_are_read(tmp_path: Path) -> None:
    config = TemporalConfig.from_env(
        {
            "TEMPORAL_ADDRESS": "ns.acct.tmprl.cloud:7233",
            "TEMPORAL_NAMESPACE": "ns.acct",
            "TEMPORAL_TASK_QUEUE": "tq-1",
            "TEMPORAL_TLS_CLIENT_CERT_PATH": pem(tmp_path, "c.pem", b"CERT"),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": pem(tmp_path, "k.pem", b"KEY"),
            "TEMPORAL_TLS_SERVER_NAME": "sni.example",
            "TEMPORAL_GRPC_META_X_TENANT": "shop",
        }
    )
    assert config.address == "ns.acct.tmprl.cloud:7233"
    assert config.namespace == "ns.acct"
    assert config.task_queue == "tq-1"
    assert isinstance(config.tls, TLSConfig)
    assert (config.tls.client_cert, config.tls.client_private_key) == (b"CERT", b"KEY")
    assert config.tls.domain == "sni.example"
    assert config.rpc_metadata == {"x-tenant": "shop"}
    assert TemporalConfig.from_env({"TEMPORAL_TLS": "true"}).tls is not False


def test_profile_from_the_config_file(tmp_path: Path) -> None:
    config_file = tmp_path / "temporal.toml"
    config_file.write_text(
        '[profile.prod]\naddress = "prod.example:7233"\nnamespace = "prod"\napi_key = "s3cret"\n'
    )
    config = TemporalConfig.from_env(
        {"TEMPORAL_CONFIG_FILE": str(config_file), "TEMPORAL_PROFILE": "prod"}
    )
    assert (config.address, config.namespace, config.tls) == ("prod.example:7233", "prod", True)
    assert config.api_key == "s3cret"
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(("old", "new"), sorted(DEPRECATED_VARIABLES.items()))
def test_old_tls_names_still_work_with_a_warning(tmp_path: Path, old: str, new: str) -> None:
    path = pem(tmp_path, "file.pem", b"PEM")
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated.*use {new}"):
        old_config = TemporalConfig.from_env({old: path})
    assert old_config == TemporalConfig.from_env({new: path})
    assert isinstance(old_config.tls, TLSConfig)


def test_the_new_name_wins_over_the_old_one(tmp_path: Path) -> None:
    old = pem(tmp_path, "old.pem", b"OLD")
    new = pem(tmp_path, "new.pem", b"NEW")
    with pytest.warns(DeprecationWarning, match="is ignored"):
        config = TemporalConfig.from_env(
            {"TEMPORAL_TLS_CA_FILE": old, "TEMPORAL_TLS_SERVER_CA_CERT_PATH": new}
        )
    assert isinstance(config.tls, TLSConfig)
    assert config.tls.server_root_ca_cert == b"NEW"


@pytest.fixture(scope="module")
async def env(temporal_test_server_bin: Path) -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(temporal_test_server_bin),
        data_converter=escrow_data_converter(),
    )
    try:
        yield environment
    finally:
        await environment.shutdown()


async def test_connect_uses_the_pydantic_converter(env: WorkflowEnvironment) -> None:
    target = env.client.service_client.config.target_host
    client = await connect(TemporalConfig(address=target))
    assert client.namespace == "default"
    assert client.data_converter.payload_converter_class is PydanticPayloadConverter


def test_an_unreadable_configuration_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TemporalConfigError, match="nope"):
        TemporalConfig.from_env({"TEMPORAL_PROFILE": "nope"})
    with pytest.raises(TemporalConfigError):
        TemporalConfig.from_env({"TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(tmp_path / "none.pem")})
