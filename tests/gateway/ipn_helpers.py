"""Posting IPNs to the gateway the way Cotpay does: signed URL, plain or sealed body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from cotpay.envelope import EncryptedEnvelope, load_private_key
from cotpay.ipn import ipn_signature
from tests.gateway.conftest import IPN_SECRET


def ipn_path(ref: str, step: str, *, sig: str | None = None) -> str:
    return (
        f"/ipn/{ref}/{step}?sig={sig if sig is not None else ipn_signature(IPN_SECRET, ref, step)}"
    )


async def post_ipn(
    http: httpx.AsyncClient, ref: str, step: str, body: Any, *, sig: str | None = None
) -> httpx.Response:
    return await http.post(
        ipn_path(ref, step, sig=sig),
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": ""},
    )


async def post_sealed_ipn(
    http: httpx.AsyncClient, ref: str, step: str, body: Any, merchant_key_file: Path
) -> httpx.Response:
    public = load_private_key(merchant_key_file.read_bytes()).public_key()
    sealed = EncryptedEnvelope(peer_public_key=public, own_private_key=None).seal(
        body, path=f"/ipn/{ref}/{step}", access_token="cotpay-token", app_id="cotpay"
    )
    return await http.post(ipn_path(ref, step), content=sealed.body, headers=sealed.headers)
