"""``starter.temporal_client`` TLS choice and the UI texts of ``workflows.summary``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr
from temporalio.client import TLSConfig
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.testing import WorkflowEnvironment

from starter.settings import TemporalSettings
from starter.temporal_client import connect, tls_config
from tests.workflow.helpers import order_input
from workflows.summary import details_line, summary_for


def test_tls_off_by_default_on_with_api_key_or_files(tmp_path: Path) -> None:
    assert tls_config(TemporalSettings()) is False
    assert tls_config(TemporalSettings(api_key=SecretStr("k"))) is True
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"CA")
    config = tls_config(TemporalSettings(tls_ca_file=ca))
    assert isinstance(config, TLSConfig)
    assert config.server_root_ca_cert == b"CA"
    assert config.client_cert is None


async def test_connect_uses_the_pydantic_converter(env: WorkflowEnvironment) -> None:
    target = env.client.service_client.config.target_host
    client = await connect(TemporalSettings(address=target))
    assert client.namespace == "default"
    assert client.data_converter.payload_converter_class is PydanticPayloadConverter


def test_summary_and_details_carry_no_personal_data() -> None:
    order = order_input(order_ref="shop-42", amount=1_250_000)
    summary = summary_for(order)
    assert summary.startswith("Escrow shop-42: 1,250,000 VND")
    assert order.buyer_id not in summary
    line = details_line(
        "Waiting for buyer payment",
        datetime(2026, 11, 25, 7, 0, tzinfo=UTC),
        datetime(2026, 11, 26, 7, 0, tzinfo=UTC),
    )
    assert line == (
        "Waiting for buyer payment since 2026-11-25 14:00 ICT (until 2026-11-26 14:00 ICT)"
    )
