"""The IPN parser and the signed per-step IPN URLs (cotpay/ipn.py)."""

from __future__ import annotations

import pytest

from cotpay.ipn import (
    MAX_IPN_URL,
    IpnParseError,
    IpnStep,
    ipn_signature,
    ipn_url,
    parse_ipn,
    verify_ipn_signature,
)


def test_known_status_is_normalised() -> None:
    body = parse_ipn({"idOrder": 7, "status": " holding ", "code": 10100, "amount": 30_000})
    assert body.status == "HOLDING" and body.known
    assert body.idOrder == 7


def test_unknown_status_and_extra_fields_are_kept() -> None:
    body = parse_ipn({"status": "ON_HOLD_REVIEW", "idOrder": 7, "fee": 1000})
    assert body.status == "ON_HOLD_REVIEW" and not body.known
    assert body.extras() == {"fee": 1000}


@pytest.mark.parametrize("payload", [[], "HOLDING", {}, {"status": ""}, {"status": "   "}])
def test_unusable_bodies_are_refused(payload: object) -> None:
    with pytest.raises(IpnParseError):
        parse_ipn(payload)


def test_signed_url_round_trip() -> None:
    url = ipn_url("https://shop.example/", "s3cret", "order-42", IpnStep.PAYMENT)
    sig = ipn_signature("s3cret", "order-42", "payment")
    assert url == f"https://shop.example/ipn/order-42/payment?sig={sig}"
    assert verify_ipn_signature("s3cret", "order-42", "payment", sig)
    assert not verify_ipn_signature("s3cret", "order-42", "verify", sig)
    assert not verify_ipn_signature("other", "order-42", "payment", sig)
    assert not verify_ipn_signature("s3cret", "order-42", "payment", "")
    assert "=" not in sig and "s3cret" not in url


@pytest.mark.parametrize(
    "sig",
    ["oZ\x07W]\u0083", "é" * 43, "\u0000", "\ud800", "签名"],
    ids=["fuzzed", "accents", "nul", "lone-surrogate", "cjk"],
)
def test_non_ascii_signature_does_not_match_and_never_raises(sig: str) -> None:
    # hmac.compare_digest raises TypeError on non-ASCII str: found by schemathesis (issue 13).
    assert not verify_ipn_signature("s3cret", "order-42", "payment", sig)


def test_signature_with_a_non_ascii_suffix_does_not_match() -> None:
    sig = ipn_signature("s3cret", "order-42", "payment")
    assert not verify_ipn_signature("s3cret", "order-42", "payment", sig + "é")
    assert not verify_ipn_signature("s3cret", "order-42", "payment", sig[:-1] + "é")


def test_url_longer_than_cotpay_accepts_is_refused() -> None:
    public = "https://shop.example/" + "p" * 150
    assert len(ipn_url(public, "k", "o" * 20, "verify")) <= MAX_IPN_URL
    with pytest.raises(ValueError, match="255"):
        ipn_url(public, "k", "o" * 64, "verify")
