"""Section ``envelope``: seal + open of one create-order request, encrypted vs plain.

One operation = what a request costs both ends: the sender seals, the receiver opens. The
encrypted operation is split into its RSA part (OAEP encrypt + decrypt of the passphrase) and
its AES part (CryptoJS-format encrypt + decrypt of the path and of the payload); the remainder
is JSON, the MD5 validate digest and the passphrase draw. Each figure is the best of a few
rounds of a fixed count, in one process, with one 2048-bit key pair made at the start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.stats import Deadline, rate, ratio
from cotpay.envelope import (
    EncryptedEnvelope,
    PlainEnvelope,
    aes_decrypt,
    aes_encrypt,
    dumps,
    generate_private_key,
    new_passphrase,
    rsa_decrypt,
    rsa_encrypt,
)
from cotpay.ipn import ipn_url
from cotpay.models import ENDPOINTS, CreateOrderRequest

PATH = ENDPOINTS["create-order"].path
TOKEN = "bench-access-token-0123456789abcdef"
APP_ID = "bench-app"
ROUNDS = 3
_CHECK_EVERY = 32


@dataclass(frozen=True)
class Counts:
    encrypted: int
    plain: int

    @classmethod
    def for_run(cls, quick: bool) -> Counts:
        return cls(encrypted=40, plain=400) if quick else cls(encrypted=1000, plain=20_000)


def create_order_payload() -> dict[str, Any]:
    """A typical create-order body: Vietnamese description, a signed IPN URL, an order code."""
    return CreateOrderRequest(
        partnerId="0912345678",
        buyerId="0987654321",
        amount=1_250_000,
        desc="Thanh toán đơn hàng #A-10293: áo sơ mi nam (2), quần tây (1)",
        ipnUrl=ipn_url("https://shop.example.vn", "bench-ipn-secret", "order-A-10293", "create"),
        orderCode="order-A-10293",
    ).wire()


def best_seconds_per_op(
    op: Callable[[], object], count: int, deadline: Deadline, what: str
) -> float:
    """The fastest of ``ROUNDS`` rounds of ``count`` calls, per call."""
    op()
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for i in range(count):
            op()
            if i % _CHECK_EVERY == 0:
                deadline.check(what)
        best = min(best, (time.perf_counter() - started) / count)
    return best


def _figures(seconds_per_op: float, count: int) -> dict[str, float | int]:
    return {
        "ops_per_s": rate(1, seconds_per_op),
        "us_per_op": round(seconds_per_op * 1e6, 2),
        "iterations": count * ROUNDS,
    }


def run(*, quick: bool, deadline: Deadline) -> dict[str, Any]:
    counts = Counts.for_run(quick)
    payload = create_order_payload()
    key = generate_private_key()
    public = key.public_key()
    encrypted = EncryptedEnvelope(peer_public_key=public, own_private_key=key)
    plain = PlainEnvelope()
    text = dumps(payload)

    def encrypted_op() -> object:
        sealed = encrypted.seal(payload, path=PATH, access_token=TOKEN, app_id=APP_ID)
        return encrypted.open(sealed.headers, sealed.body)

    def plain_op() -> object:
        sealed = plain.seal(payload, path=PATH, access_token=TOKEN, app_id=APP_ID)
        return plain.open(sealed.headers, sealed.body)

    def rsa_op() -> object:
        return rsa_decrypt(rsa_encrypt(new_passphrase(), public), key)

    passphrase = new_passphrase()

    def aes_op() -> object:
        action = aes_encrypt(PATH, passphrase)
        message = aes_encrypt(text, passphrase)
        return aes_decrypt(action, passphrase), aes_decrypt(message, passphrase)

    enc_s = best_seconds_per_op(encrypted_op, counts.encrypted, deadline, "envelope encrypted")
    plain_s = best_seconds_per_op(plain_op, counts.plain, deadline, "envelope plain")
    rsa_s = best_seconds_per_op(rsa_op, counts.encrypted, deadline, "envelope rsa")
    aes_s = best_seconds_per_op(aes_op, counts.plain // 4, deadline, "envelope aes")
    sealed = encrypted.seal(payload, path=PATH, access_token=TOKEN, app_id=APP_ID)
    return {
        "payload_bytes": len(text.encode("utf-8")),
        "sealed_body_bytes": len(sealed.body),
        "rsa_key_bits": key.key_size,
        "encrypted": _figures(enc_s, counts.encrypted),
        "plain": _figures(plain_s, counts.plain),
        "rsa": _figures(rsa_s, counts.encrypted),
        "aes": _figures(aes_s, counts.plain // 4),
        "ratios": {
            "encrypted_over_plain_time": ratio(enc_s, plain_s),
            "rsa_share_of_encrypted": ratio(rsa_s, enc_s),
            "aes_share_of_encrypted": ratio(aes_s, enc_s),
            "rsa_over_aes_time": ratio(rsa_s, aes_s),
        },
    }
