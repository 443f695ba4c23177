"""docs/webhooks.md and docs/alerting.md say what the code does: every ``ESCROW_WEBHOOK_*``
setting and every event type is documented, and the alert rules name series that exist."""

from __future__ import annotations

import re
from pathlib import Path

import prometheus_client
import yaml

from webhooks import metrics
from webhooks.events import EventType
from webhooks.settings import WebhookSettings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_setting_and_event_type_is_documented() -> None:
    text = (DOCS / "webhooks.md").read_text(encoding="utf-8")
    for name in WebhookSettings.model_fields:
        if name == "env":
            assert "`ESCROW_ENV`" in text
            continue
        variable = f"ESCROW_WEBHOOK_{name.upper()}"
        short = f"`_{name.upper()}`"
        assert f"`{variable}`" in text or (short in text), variable
    for event_type in EventType:
        assert f"`{event_type.value}`" in text, event_type


def test_the_alert_rules_name_webhook_series_that_exist() -> None:
    text = (DOCS / "alerting.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block is not None
    rules = yaml.safe_load(block.group(1))["groups"][0]["rules"]
    exported = set()
    for collector in vars(metrics).values():
        if isinstance(collector, prometheus_client.metrics.MetricWrapperBase):
            for family in collector.collect():
                exported |= {sample.name for sample in family.samples}
                exported.add(family.name)
    named = {
        series for rule in rules for series in re.findall(r"escrow_webhook_[a-z_]+", rule["expr"])
    }
    assert named, "no webhook alert rules"
    assert named <= exported, named - exported
    alerts = {rule["alert"] for rule in rules}
    assert "EscrowWebhookEndpointDisabled" in alerts
