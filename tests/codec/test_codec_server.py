from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from runtime.codec import ENCODING, EncryptionCodec, KeyRing
from runtime.codec_server import create_codec_app, ui_codec_endpoint
from tests.support import make_key, serve

UI = "http://127.0.0.1:8233"
TOKEN = "codec-test-token"
PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"buyer":"0912345678"}')


def body(*payloads: Payload) -> str:
    return json_format.MessageToJson(Payloads(payloads=list(payloads)))


def parse(text: str) -> list[Payload]:
    return list(json_format.Parse(text, Payloads()).payloads)


@pytest.fixture(scope="module")
async def base_url() -> AsyncIterator[str]:
    codec = EncryptionCodec(KeyRing.parse(f"k1:{make_key()}"))
    async with serve(create_codec_app(codec, UI, TOKEN)) as url:
        yield url


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        yield client


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


async def test_round_trip_as_the_ui_sends_it(http: httpx.AsyncClient) -> None:
    encoded = await http.post("/encode", content=body(PLAIN), headers=auth())
    assert encoded.status_code == 200
    wire = encoded.json()["payloads"][0]
    assert base64.b64decode(wire["metadata"]["encoding"]) == ENCODING
    assert b"0912345678" not in base64.b64decode(wire["data"])
    decoded = await http.post(
        "/decode",
        content=encoded.text,
        headers={**auth(), "Origin": UI, "X-Namespace": "default"},
    )
    assert decoded.status_code == 200
    assert decoded.headers["access-control-allow-origin"] == UI
    assert parse(decoded.text) == [PLAIN]


async def test_path_token_endpoint_for_the_browser_ui(http: httpx.AsyncClient, base_url: str):
    endpoint = ui_codec_endpoint(base_url, TOKEN)
    encoded = await http.post(f"{endpoint}/encode", content=body(PLAIN))
    assert encoded.status_code == 200
    decoded = await http.post(f"{endpoint}/decode", content=encoded.text)
    assert parse(decoded.text) == [PLAIN]
    wrong = await http.post(f"{ui_codec_endpoint(base_url, 'nope')}/decode", content=encoded.text)
    assert wrong.status_code == 403


async def test_missing_token_is_401(http: httpx.AsyncClient) -> None:
    response = await http.post("/decode", content=body(PLAIN))
    assert response.status_code == 401
    assert response.json() == {"error": "missing_token"}


@pytest.mark.parametrize("header", ["Bearer wrong-token", f"Basic {TOKEN}", "Bearer"])
async def test_wrong_token_is_403(http: httpx.AsyncClient, header: str) -> None:
    response = await http.post("/decode", content=body(PLAIN), headers={"Authorization": header})
    assert response.status_code == 403
    assert response.json() == {"error": "invalid_token"}


async def test_preflight_allows_ui_origin_and_x_namespace(http: httpx.AsyncClient) -> None:
    response = await http.options(
        "/decode",
        headers={
            "Origin": UI,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == UI
    assert "x-namespace" in response.headers["access-control-allow-headers"].lower()


async def test_foreign_origin_gets_no_cors_allow(http: httpx.AsyncClient) -> None:
    evil = "http://evil.example"
    preflight = await http.options(
        "/decode",
        headers={"Origin": evil, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code >= 400
    direct = await http.post("/decode", content=body(PLAIN), headers={**auth(), "Origin": evil})
    assert "access-control-allow-origin" not in direct.headers
    assert direct.status_code == 403
    assert direct.json() == {"error": "origin_not_allowed"}


async def test_garbage_and_undecryptable_bodies_are_400(http: httpx.AsyncClient) -> None:
    garbage = await http.post("/decode", content="not json", headers=auth())
    assert garbage.status_code == 400
    foreign = Payload(metadata={"encoding": ENCODING, "encryption-key-id": b"zz"}, data=b"0" * 40)
    response = await http.post("/decode", content=body(foreign), headers=auth())
    assert response.status_code == 400
    assert response.json() == {"error": "codec_failed"}


def test_token_required_to_build() -> None:
    with pytest.raises(ValueError, match="ESCROW_CODEC_TOKEN"):
        create_codec_app(EncryptionCodec(KeyRing.parse(f"k1:{make_key()}")), UI, "")
