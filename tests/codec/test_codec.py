from __future__ import annotations

import base64

import pytest
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes

from runtime.codec import (
    ENCODING,
    KEY_ID_METADATA,
    CodecError,
    CodecSettings,
    EncryptionCodec,
    KeyRing,
    NoKeyCodec,
    escrow_data_converter,
    search_salt,
)
from tests.support import make_key


class Buyer(BaseModel):
    name: str
    email: str
    phone: str


BUYER = Buyer(name="Nguyen Van A", email="a@example.vn", phone="0912345678")


def ring(spec: str) -> KeyRing:
    return KeyRing.parse(spec)


async def test_round_trip_hides_plaintext() -> None:
    converter = escrow_data_converter(CodecSettings(keys=f"k1:{make_key()}"))
    [payload] = await converter.encode([BUYER])
    assert payload.metadata["encoding"] == ENCODING
    assert payload.metadata[KEY_ID_METADATA] == b"k1"
    for secret in (b"Nguyen", b"a@example.vn", b"0912345678", b"json/plain"):
        assert secret not in payload.SerializeToString()
    [back] = await converter.decode([payload], [Buyer])
    assert back == BUYER


async def test_rotation_old_key_decodes_new_key_encodes() -> None:
    old, new = make_key(), make_key()
    before = EncryptionCodec(ring(f"2025a:{old}"))
    [sealed_old] = await before.encode([Payload(data=b"held order")])
    after = EncryptionCodec(ring(f"2026b:{new}, 2025a:{old}"))
    assert after.current_key_id == "2026b"
    [opened] = await after.decode([sealed_old])
    assert opened.data == b"held order"
    [sealed_new] = await after.encode([Payload(data=b"next order")])
    assert sealed_new.metadata[KEY_ID_METADATA] == b"2026b"
    with pytest.raises(CodecError, match="unknown key id '2026b'"):
        await before.decode([sealed_new])


async def test_tampered_payload_is_rejected() -> None:
    codec = EncryptionCodec(ring(f"k1:{make_key()}"))
    [sealed] = await codec.encode([Payload(data=b"amount=500000")])
    flipped = bytearray(sealed.data)
    flipped[-1] ^= 0x01
    tampered = Payload(metadata=dict(sealed.metadata), data=bytes(flipped))
    with pytest.raises(CodecError, match="failed authentication"):
        await codec.decode([tampered])
    relabelled = Payload(
        metadata={**dict(sealed.metadata), KEY_ID_METADATA: b"k2"}, data=sealed.data
    )
    codec2 = EncryptionCodec(ring(f"k1:{make_key()},k2:{make_key()}"))
    with pytest.raises(CodecError):
        await codec2.decode([relabelled])


async def test_wrong_key_same_id_is_rejected() -> None:
    [sealed] = await EncryptionCodec(ring(f"k1:{make_key()}")).encode([Payload(data=b"x")])
    with pytest.raises(CodecError, match="failed authentication"):
        await EncryptionCodec(ring(f"k1:{make_key()}")).decode([sealed])


async def test_unencrypted_payloads_pass_through_decode() -> None:
    codec = EncryptionCodec(ring(f"k1:{make_key()}"))
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"a":1}')
    assert await codec.decode([plain]) == [plain]


async def test_no_keys_gives_plain_pydantic_converter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESCROW_CODEC_KEYS", raising=False)
    monkeypatch.delenv("ESCROW_CODEC_KEYS_FILE", raising=False)
    converter = escrow_data_converter(CodecSettings())
    assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class
    assert converter.failure_converter_class is pydantic_data_converter.failure_converter_class
    assert isinstance(converter.payload_codec, NoKeyCodec)
    plain = await converter.encode(["plain"])
    assert plain[0].metadata["encoding"] == b"json/plain"
    sealed = await EncryptionCodec(KeyRing.parse(f"k9:{make_key()}")).encode(plain)
    with pytest.raises(CodecError, match="ESCROW_CODEC_KEYS_FILE"):
        await converter.decode(sealed)


def test_keys_from_env_and_failure_attributes_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCROW_CODEC_KEYS", f"env1:{make_key()}")
    converter = escrow_data_converter()
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_codec.current_key_id == "env1"
    assert isinstance(converter.failure_converter, DefaultFailureConverterWithEncodedAttributes)
    assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class


def test_keys_from_file(tmp_path) -> None:
    keys = tmp_path / "codec.keys"
    keys.write_text(f"# current first\nnew:{make_key()}\nold:{make_key()}\n")
    ring_ = CodecSettings(keys_file=keys).key_ring()
    assert ring_ is not None
    assert ring_.current == "new"
    assert set(ring_.keys) == {"new", "old"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("k1", "<id>:<base64 key>"),
        ("k1:not base64!", "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "32 bytes"),
        (f"bad id:{make_key()}", "invalid key id"),
        (f"k1:{make_key()},k1:{make_key()}", "appears twice"),
        (" , ", "empty"),
    ],
)
def test_bad_key_specs_fail_without_leaking(spec: str, message: str) -> None:
    with pytest.raises(CodecError, match=message) as info:
        KeyRing.parse(spec)
    secret = spec.partition(":")[2]
    if len(secret) > 8:
        assert secret not in str(info.value)


def test_search_salt_requires_key_when_enabled() -> None:
    assert CodecSettings(pseudonymize_search=False).search_salt_hex() is None
    with pytest.raises(CodecError, match="ESCROW_SEARCH_KEY"):
        CodecSettings(ESCROW_PSEUDONYMIZE_SEARCH=True).search_salt_hex()
    on = CodecSettings(ESCROW_PSEUDONYMIZE_SEARCH=True, ESCROW_SEARCH_KEY="s3cret")
    assert on.search_salt_hex() == search_salt(b"s3cret").hex()
