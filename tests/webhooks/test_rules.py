"""Pure rules of webhooks: event types and ids, the retry schedule, sealed secrets and
signatures (checked with ``standardwebhooks``), and the URL and address rules, including the
connect-time check against a name that resolves differently later (DNS rebinding)."""

from __future__ import annotations

import base64
import ipaddress
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from runtime.codec import KeyRing, generate_key
from tests.webhooks.receiver import Receiver
from webhooks import safety
from webhooks.backoff import nominal_schedule, retry_delay
from webhooks.events import (
    ALL_EVENTS,
    EventType,
    event_id,
    parse_event_types,
    subscribed,
    type_for_status,
)
from webhooks.safety import UrlRefused, check_resolved, check_url
from webhooks.secrets import SecretBox, SecretUnavailable, new_secret, sign
from webhooks.sender import Sender
from webhooks.settings import WebhookSettings
from workflows.models import EscrowStatus

DEV = WebhookSettings(env="development")
PROD = WebhookSettings(env="production")
PROD_PRIVATE = WebhookSettings(env="production", allow_private=True)


def test_one_event_type_per_status_but_creating() -> None:
    assert {t.status for t in EventType} == set(EscrowStatus) - {EscrowStatus.CREATING}
    assert type_for_status(EscrowStatus.PAID_OUT) is EventType.PAID_OUT
    assert type_for_status("NEEDS_ATTENTION") is EventType.NEEDS_ATTENTION
    assert type_for_status(EscrowStatus.CREATING) is None
    assert type_for_status(None) is None
    assert EventType.RETURN_REQUESTED.value == "order.return_requested"


def test_event_ids_are_stable_and_distinct() -> None:
    assert event_id("shop-1", 3) == event_id("shop-1", 3)
    assert event_id("shop-1", 3) != event_id("shop-1", 4) != event_id("shop-2", 3)
    assert event_id("shop-1", 3).startswith("evt_") and len(event_id("shop-1", 3)) == 36


def test_event_type_subscriptions() -> None:
    assert parse_event_types(None) == [ALL_EVENTS]
    assert parse_event_types([]) == [ALL_EVENTS]
    assert parse_event_types(["order.held", "*"]) == [ALL_EVENTS]
    assert parse_event_types(["order.paid_out", "order.held", "order.held"]) == [
        "order.held",
        "order.paid_out",
    ]
    with pytest.raises(ValueError, match=r"order\.shipped, payment\.done"):
        parse_event_types(["order.held", "payment.done", "order.shipped"])
    assert subscribed(["*"], "order.held") and subscribed(["order.held"], "order.held")
    assert not subscribed(["order.held"], "order.paid_out")


def test_the_retry_schedule_spans_three_days_with_bounded_jitter() -> None:
    first, cap, window = timedelta(seconds=15), timedelta(hours=6), timedelta(days=3)
    times = nominal_schedule(first, cap, window)
    assert times[0] == timedelta(0) and times[-1] == window
    assert times[1:4] == [timedelta(seconds=15), timedelta(seconds=45), timedelta(seconds=105)]
    assert len(times) == 23
    rng = random.Random(0)
    for failures in range(1, 40):
        nominal = min(cap, first * 2 ** min(failures - 1, 32))
        delay = retry_delay(failures, first=first, cap=cap, rng=rng)
        assert nominal * 0.8 <= delay <= nominal * 1.2


def test_secrets_are_standard_webhooks_secrets_sealed_per_endpoint() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    ring = KeyRing.parse(f"k2:{generate_key()},k1:{generate_key()}")
    box = SecretBox(ring)
    sealed = box.seal(secret, "we_1")
    assert secret[6:] not in sealed and sealed.startswith("aesgcm:k2:")
    assert box.open(sealed, "we_1") == secret
    with pytest.raises(SecretUnavailable):
        box.open(sealed, "we_2")  # bound to its endpoint
    with pytest.raises(SecretUnavailable, match="not in ESCROW_CODEC_KEYS") as err:
        SecretBox(KeyRing.parse(f"other:{generate_key()}")).open(sealed, "we_1")
    assert secret not in str(err.value)
    # An older key of the ring still opens what it sealed.
    older = SecretBox(KeyRing.parse(f"k1:{base64.b64encode(ring.keys['k1']).decode()}"))
    assert box.open(older.seal(secret, "we_1"), "we_1") == secret
    plain = SecretBox(None)
    assert plain.open(plain.seal(secret, "we_1"), "we_1") == secret


def test_signatures_verify_with_the_standardwebhooks_library() -> None:
    new, old = new_secret(), new_secret()
    at = datetime.now(UTC).replace(microsecond=0)
    body = '{"id":"evt_1","type":"order.held","data":{"description":"Áo dài"}}'
    header = sign("evt_1", at, body, [new, old])
    assert len(header.split(" ")) == 2
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": header,
    }
    for secret in (new, old):
        assert Webhook(secret).verify(body.encode(), headers)["type"] == "order.held"
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(body.encode(), headers)
    stale = {**headers, "webhook-timestamp": str(int(at.timestamp()) - 600)}
    with pytest.raises(Exception, match="too old"):
        Webhook(new).verify(body.encode(), stale)


@pytest.mark.parametrize(
    ("url", "settings", "code"),
    [
        ("http://127.0.0.1:9000/hooks", DEV, None),
        ("http://localhost/hooks", DEV, None),
        ("http://[::1]:8080/x", DEV, None),
        ("https://10.0.0.5/hooks", DEV, None),
        ("http://shop.example/hooks", DEV, "url_not_https"),
        ("http://10.0.0.5/hooks", DEV, "url_not_https"),
        ("https://shop.example/hooks?token=1", PROD, None),
        ("https://93.184.216.34/hooks", PROD, None),
        ("http://shop.example/hooks", PROD, "url_not_https"),
        ("http://127.0.0.1/hooks", PROD, "url_not_https"),
        ("https://127.0.0.1/hooks", PROD, "url_not_allowed"),
        ("https://localhost/hooks", PROD, "url_not_allowed"),
        ("https://10.1.2.3/hooks", PROD, "url_not_allowed"),
        ("https://192.168.1.1/hooks", PROD, "url_not_allowed"),
        ("https://169.254.169.254/latest/meta-data", PROD, "url_not_allowed"),
        ("https://[fe80::1]/x", PROD, "url_not_allowed"),
        ("https://[::ffff:127.0.0.1]/x", PROD, "url_not_allowed"),
        ("https://100.64.0.1/x", PROD, "url_not_allowed"),
        ("https://10.1.2.3/hooks", PROD_PRIVATE, None),
        ("https://127.0.0.1/hooks", PROD_PRIVATE, None),
        ("ftp://shop.example/x", DEV, "invalid_url"),
        ("shop.example/hooks", DEV, "invalid_url"),
        ("https://user:pw@shop.example/x", PROD, "invalid_url"),
        ("https://shop.example/x#frag", PROD, "invalid_url"),
        ("https://shop.example:99999/x", PROD, "invalid_url"),
        ("https://shop.example/" + "a" * 2100, PROD, "invalid_url"),
        ("https:///nohost", PROD, "invalid_url"),
    ],
)
def test_url_rules(url: str, settings: WebhookSettings, code: str | None) -> None:
    if code is None:
        assert check_url(url, settings) == url
    else:
        with pytest.raises(UrlRefused) as err:
            check_url(url, settings)
        assert err.value.code == code


async def test_a_name_resolving_to_a_private_address_is_refused_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = {"shop.example": ["10.0.0.7"]}

    async def fake_resolve(host: str, port: int) -> list[safety.IPAddress]:
        return [ipaddress.ip_address(a) for a in answers.get(host, [])]

    monkeypatch.setattr(safety, "resolve", fake_resolve)
    with pytest.raises(UrlRefused) as err:
        await check_resolved("https://shop.example/hooks", PROD)
    assert err.value.code == "url_not_allowed"
    await check_resolved("https://shop.example/hooks", PROD_PRIVATE)
    await check_resolved("https://unknown.example/hooks", PROD)  # decided at connect time


async def test_the_address_is_checked_again_at_connect_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: the name passed registration with a public address and now resolves to
    loopback. The connection is refused, and the receiver sees nothing."""
    async with Receiver() as receiver:
        answers = {"rebind.example": "93.184.216.34"}
        real = safety.resolve

        async def rebinding(host: str, port: int) -> list[safety.IPAddress]:
            if host in answers:
                return [ipaddress.ip_address(answers[host])]
            return await real(host, port)

        monkeypatch.setattr(safety, "resolve", rebinding)
        url = f"https://rebind.example:{receiver.port}/hooks"
        assert check_url(url, PROD) == url
        await check_resolved(url, PROD)
        answers["rebind.example"] = "127.0.0.1"
        for settings in (PROD, WebhookSettings(env="production", connect_timeout=1.0)):
            sender = Sender(settings)
            result = await sender.send(url, {}, b"{}")
            await sender.aclose()
            assert not result.ok
            assert result.outcome == "refused"
            assert result.error is not None and "127.0.0.1" in result.error
        # An IP literal given straight to the sender is checked the same way.
        sender = Sender(PROD)
        result = await sender.send(receiver.url, {}, b"{}")
        await sender.aclose()
        assert result.outcome == "refused"
        assert receiver.requests == []
        # In development the same request goes through.
        sender = Sender(DEV)
        result = await sender.send(receiver.url, {}, b"{}")
        await sender.aclose()
        assert result.ok and len(receiver.requests) == 1


async def test_the_worker_runs_a_dispatcher_unless_told_not_to_or_misconfigured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from worker import webhook_dispatcher

    monkeypatch.setenv("ESCROW_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    made = webhook_dispatcher()
    assert made is not None
    await made.db.close()
    await made.sender.aclose()
    monkeypatch.setenv("ESCROW_WEBHOOK_DISPATCHER", "false")
    assert webhook_dispatcher() is None
    monkeypatch.setenv("ESCROW_WEBHOOK_DISPATCHER", "true")
    monkeypatch.setenv("ESCROW_WEBHOOK_LEASE", "1")  # shorter than an attempt: refused
    assert webhook_dispatcher() is None
    monkeypatch.delenv("ESCROW_WEBHOOK_LEASE")
    monkeypatch.setenv("ESCROW_DATABASE_URL", "mysql://nope/x")
    assert webhook_dispatcher() is None
