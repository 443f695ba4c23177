"""The production log pipeline (``configure_logging("json")``): order context and redaction.

Each test configures logging into its own buffer and restores the previous configuration.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from cotpay.logs import bind_order, configure_logging, scrub
from tests.support import make_key

EMAIL = "bich.tran@example.vn"
PHONE = "0912345678"
PHONE_INTL = "+84912345678"
TOKEN = "tok_9f8e7d6c5b4a39281706"
PASSPHRASE = "correct horse battery staple"
CODEC_KEY = make_key()
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
SECRETS = (EMAIL, PHONE, PHONE_INTL.removeprefix("+"), TOKEN, PASSPHRASE, CODEC_KEY, "MIIEvQ", JWT)


class Capture:
    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines() if line]

    def text(self) -> str:
        return self.buffer.getvalue()


@pytest.fixture
def captured() -> Iterator[Capture]:
    previous = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    capture = Capture()
    configure_logging("json", stream=capture.buffer)
    try:
        yield capture
    finally:
        structlog.configure(**previous)
        root.handlers[:] = handlers
        root.setLevel(level)


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("access_token", TOKEN),
        ("accessToken", TOKEN),
        ("COTPAY_ACCESS_TOKEN", TOKEN),
        ("authorization", f"Bearer {TOKEN}"),
        ("api_key", TOKEN),
        ("x-api-key", TOKEN),
        ("ipn_secret", TOKEN),
        ("passphrase", PASSPHRASE),
        ("key_passphrase", PASSPHRASE),
        ("password", PASSPHRASE),
        ("private_key", PEM),
        ("codec_keys", f"k1:{CODEC_KEY}"),
        ("key", CODEC_KEY),
        ("email", EMAIL),
        ("buyer_email", EMAIL),
        ("phone", PHONE),
        ("sig", TOKEN),
        ("signature", TOKEN),
    ],
)
def test_secret_fields_are_masked(captured: Capture, field: str, value: str) -> None:
    structlog.get_logger("t").info("event", **{field: value})
    [line] = captured.lines()
    assert line[field] == "[redacted]"
    assert_clean(captured.text())


@pytest.mark.parametrize(
    "text",
    [
        f"buyer {EMAIL} wrote",
        f"seller {PHONE} not linked",
        f"call {PHONE_INTL}",
        f"header Authorization: Bearer {TOKEN}",
        f"GET /ipn/A1/verify?sig={TOKEN}&x=1",
        f"retry with access_token={TOKEN}",
        f"passphrase={PASSPHRASE.replace(' ', '-')}",
        f"loaded {PEM} from disk",
        f"ring k1:{CODEC_KEY}",
        f"jwt {JWT}",
    ],
)
def test_secrets_in_free_text_are_masked(captured: Capture, text: str) -> None:
    structlog.get_logger("t").warning(text, detail=text)
    assert_clean(captured.text())
    assert "correct-horse" not in captured.text()
    [line] = captured.lines()
    assert line["event"] == line["detail"] != text


def test_nested_values_are_masked(captured: Capture) -> None:
    structlog.get_logger("t").info(
        "evidence",
        data={"buyer": {"email": EMAIL, "name": "B"}, "ids": [PHONE], "token": TOKEN},
    )
    [line] = captured.lines()
    assert line["data"]["buyer"] == {"email": "[redacted]", "name": "B"}
    assert line["data"]["ids"] == ["[phone]"]
    assert_clean(captured.text())


def test_exception_text_is_masked(captured: Capture) -> None:
    try:
        raise RuntimeError(f"Cotpay refused {EMAIL} with token={TOKEN}")
    except RuntimeError:
        structlog.get_logger("t").exception("call_failed")
        logging.getLogger("stdlib").exception("stdlib_failed")
    lines = captured.lines()
    assert [line["event"] for line in lines] == ["call_failed", "stdlib_failed"]
    assert all("RuntimeError" in line["exception"] for line in lines)
    assert_clean(captured.text())


def test_stdlib_records_are_masked_and_json(captured: Capture) -> None:
    logging.getLogger("some.library").warning("client %s sent %s", EMAIL, PHONE)
    [line] = captured.lines()
    assert line["logger"] == "some.library" and line["level"] == "warning"
    assert_clean(captured.text())


def test_order_context_on_every_line(captured: Capture) -> None:
    log = structlog.get_logger("t")
    with bind_order(order_ref="A1", workflow_id="escrow-A1"):
        log.info("one", id_order=1000001, step="verify")
        logging.getLogger("stdlib").info("two")
    log.info("outside")
    one, two, outside = captured.lines()
    assert {k: one[k] for k in ("orderRef", "workflowId", "cotpayOrderId", "step")} == {
        "orderRef": "A1",
        "workflowId": "escrow-A1",
        "cotpayOrderId": 1000001,
        "step": "verify",
    }
    assert "order_ref" not in one and "id_order" not in one
    assert two["orderRef"] == "A1" and two["workflowId"] == "escrow-A1"
    assert "orderRef" not in outside


def test_workflow_logger_records_carry_their_context(captured: Capture) -> None:
    """What ``workflow.logger`` hands to stdlib: ``temporal_workflow`` plus our extras."""
    logging.getLogger("temporalio.workflow").warning(
        "order needs attention",
        extra={
            "temporal_workflow": {"workflow_id": "escrow-B2", "run_id": "r"},
            "orderRef": "B2",
            "cotpayOrderId": 42,
            "step": "payment",
        },
    )
    [line] = captured.lines()
    assert line["workflowId"] == "escrow-B2"
    assert (line["orderRef"], line["cotpayOrderId"], line["step"]) == ("B2", 42, "payment")


def test_console_format_is_not_json_and_still_masked() -> None:
    previous = structlog.get_config()
    root = logging.getLogger()
    handlers = root.handlers[:]
    buffer = io.StringIO()
    try:
        configure_logging("console", stream=buffer)
        structlog.get_logger("t").info("hello", email=EMAIL, note=f"call {PHONE}")
    finally:
        structlog.configure(**previous)
        root.handlers[:] = handlers
    text = buffer.getvalue()
    assert "hello" in text and not text.startswith("{")
    assert_clean(text)


def test_scrub_for_exception_messages() -> None:
    assert scrub(f"{EMAIL} / {PHONE} / Bearer {TOKEN}") == "[email] / [phone] / Bearer [redacted]"
