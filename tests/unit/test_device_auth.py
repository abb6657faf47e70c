"""Tests for clawgate.protocol.device_auth (spec §4)."""

from __future__ import annotations

import base64
import dataclasses
import textwrap

import pytest

from clawgate.protocol.device_auth import (
    DEVICE_AUTH_DEVICE_ID_MISMATCH,
    DEVICE_AUTH_NONCE_MISMATCH,
    DEVICE_AUTH_NONCE_REQUIRED,
    DEVICE_AUTH_PUBLIC_KEY_INVALID,
    DEVICE_AUTH_SIGNATURE_EXPIRED,
    DEVICE_AUTH_SIGNATURE_INVALID,
    DeviceAuthError,
    DeviceIdentity,
    SignedFields,
    VerifiedDevice,
    build_payload_v2,
    build_payload_v3,
    decode_public_key,
    decode_signature,
    device_id_for,
    encode_public_key,
    normalize_ascii_lower,
    select_signed_token,
    verify_device,
)

# RFC 8032 §7.1 TEST 1 and the values of spec §4.3.
SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RAW_PUBLIC_KEY = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
PUBLIC_KEY_B64URL = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
DEVICE_ID = "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9"
V3_PAYLOAD = (
    f"v3|{DEVICE_ID}|cli|cli|operator|operator.admin,operator.read|1700000000000||nonce-abc|linux|"
)
V3_SIGNATURE = (
    "Lw5GUjj3SAho4VN5WWfcQIu983XkP8-REW5QHFggFfbFLNOzAKR0ukiJf3Bl40tEiNMvTqobNMN-AhGtXKIfDg"
)
V2_PAYLOAD = (
    f"v2|{DEVICE_ID}|cli|cli|operator|operator.admin,operator.read|1700000000000||nonce-abc"
)
V2_SIGNATURE = (
    "p4ORHwIfZaS2QfsIparvhyUaJqGP2IhfbvnoQl8ioUN5uqyJJL-6xE-HyEFialEAlNmfGacO5VJTJUgm8upvAA"
)

SIGNED_AT = 1_700_000_000_000
NONCE = "nonce-abc"


def vector_fields(**changes: object) -> SignedFields:
    """Return the SignedFields of the §4.3 key vector, with ``changes`` applied."""
    fields = SignedFields(
        device_id=DEVICE_ID,
        client_id="cli",
        client_mode="cli",
        role="operator",
        scopes=("operator.admin", "operator.read"),
        signed_at_ms=SIGNED_AT,
        token=None,
        nonce=NONCE,
        platform="linux",
        device_family=None,
    )
    return dataclasses.replace(fields, **changes)  # type: ignore[arg-type]


def verify(
    *,
    device_id: str = DEVICE_ID,
    public_key: str = PUBLIC_KEY_B64URL,
    signature: str = V3_SIGNATURE,
    nonce: str = NONCE,
    challenge_nonce: str = NONCE,
    now_ms: int = SIGNED_AT,
    fields: SignedFields | None = None,
) -> VerifiedDevice:
    """Run verify_device on the §4.3 vector with the given overrides."""
    if fields is None:
        fields = vector_fields(device_id=device_id, nonce=nonce)
    return verify_device(
        device_id=device_id,
        public_key=public_key,
        signature=signature,
        signed_at_ms=fields.signed_at_ms,
        nonce=nonce,
        challenge_nonce=challenge_nonce,
        fields=fields,
        now_ms=now_ms,
    )


def error_code_of(**overrides: object) -> str:
    """Return the DeviceAuthError code verify() raises with ``overrides``."""
    with pytest.raises(DeviceAuthError) as info:
        verify(**overrides)  # type: ignore[arg-type]
    return info.value.code


def pem_of(raw: bytes) -> str:
    """Wrap a raw key as a PEM SubjectPublicKeyInfo."""
    der = bytes.fromhex("302a300506032b6570032100") + raw
    body = base64.b64encode(der).decode()
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


# --- §4.3 payload string vectors -------------------------------------------------------------


def test_v2_payload_matches_reference_vector() -> None:
    fields = SignedFields(
        device_id="dev-1",
        client_id="openclaw-macos",
        client_mode="ui",
        role="operator",
        scopes=("operator.admin", "operator.read"),
        signed_at_ms=1_700_000_000_000,
        token=None,
        nonce="nonce-abc",
    )
    assert build_payload_v2(fields) == (
        "v2|dev-1|openclaw-macos|ui|operator|operator.admin,operator.read|1700000000000||nonce-abc"
    )


def test_v3_payload_with_token_and_normalised_metadata_matches_reference_vector() -> None:
    fields = SignedFields(
        device_id="dev-1",
        client_id="openclaw-macos",
        client_mode="ui",
        role="operator",
        scopes=("operator.admin", "operator.read"),
        signed_at_ms=1_700_000_000_000,
        token="tok-123",
        nonce="nonce-abc",
        platform="  IOS  ",
        device_family="  iPhone  ",
    )
    assert build_payload_v3(fields) == (
        "v3|dev-1|openclaw-macos|ui|operator|operator.admin,operator.read|1700000000000"
        "|tok-123|nonce-abc|ios|iphone"
    )


def test_v3_payload_without_platform_or_family_ends_with_two_empty_fields() -> None:
    fields = SignedFields(
        device_id="dev-2",
        client_id="openclaw-ios",
        client_mode="ui",
        scopes=("operator.read",),
        signed_at_ms=1_700_000_000_001,
        nonce="nonce-def",
    )
    assert build_payload_v3(fields) == (
        "v3|dev-2|openclaw-ios|ui|operator|operator.read|1700000000001||nonce-def||"
    )


# --- §4.3 key, id and signature vectors ------------------------------------------------------


def test_identity_from_rfc8032_seed_derives_reference_public_key() -> None:
    assert DeviceIdentity.from_seed(SEED).public_key_raw == RAW_PUBLIC_KEY


def test_public_key_encodes_to_reference_b64url() -> None:
    assert encode_public_key(RAW_PUBLIC_KEY) == PUBLIC_KEY_B64URL
    assert DeviceIdentity.from_seed(SEED).public_key_b64url == PUBLIC_KEY_B64URL


def test_device_id_is_reference_sha256_hex() -> None:
    assert device_id_for(RAW_PUBLIC_KEY) == DEVICE_ID
    assert DeviceIdentity.from_seed(SEED).device_id == DEVICE_ID


def test_key_vector_v3_payload_matches_reference() -> None:
    assert build_payload_v3(vector_fields()) == V3_PAYLOAD


def test_key_vector_v2_payload_matches_reference() -> None:
    assert build_payload_v2(vector_fields()) == V2_PAYLOAD


def test_v3_signature_equals_reference_value() -> None:
    assert DeviceIdentity.from_seed(SEED).sign(V3_PAYLOAD) == V3_SIGNATURE


def test_v2_signature_equals_reference_value() -> None:
    assert DeviceIdentity.from_seed(SEED).sign(V2_PAYLOAD) == V2_SIGNATURE


# --- successful verification ----------------------------------------------------------------


def test_verify_accepts_v3_signature() -> None:
    result = verify()
    assert result == VerifiedDevice(
        device_id=DEVICE_ID, public_key_raw=RAW_PUBLIC_KEY, payload_version="v3"
    )


def test_verify_accepts_v2_signature() -> None:
    assert verify(signature=V2_SIGNATURE).payload_version == "v2"


def test_verify_accepts_nonce_with_surrounding_whitespace() -> None:
    identity = DeviceIdentity.from_seed(SEED)
    fields = vector_fields(nonce="  nonce-abc\n")
    signature = identity.sign(build_payload_v3(fields))
    result = verify(nonce="  nonce-abc\n", fields=fields, signature=signature)
    assert result.payload_version == "v3"


def test_verify_compares_device_id_case_insensitively_and_returns_it_lowercase() -> None:
    upper_id = DEVICE_ID.upper()
    identity = DeviceIdentity.from_seed(SEED)
    fields = vector_fields(device_id=upper_id)
    signature = identity.sign(build_payload_v3(fields))
    result = verify(device_id=upper_id, fields=fields, signature=signature)
    assert result.device_id == DEVICE_ID


def test_verify_accepts_signed_at_exactly_at_skew_limit() -> None:
    assert verify(now_ms=SIGNED_AT + 120_000).payload_version == "v3"
    assert verify(now_ms=SIGNED_AT - 120_000).payload_version == "v3"


def test_verify_accepts_padded_signature() -> None:
    assert verify(signature=V3_SIGNATURE + "==").payload_version == "v3"


def test_verify_accepts_standard_base64_signature() -> None:
    std = V3_SIGNATURE.replace("-", "+").replace("_", "/") + "=="
    assert verify(signature=std).payload_version == "v3"


def test_verify_accepts_pem_public_key() -> None:
    assert verify(public_key=pem_of(RAW_PUBLIC_KEY)).public_key_raw == RAW_PUBLIC_KEY


def test_generated_identity_signature_verifies() -> None:
    identity = DeviceIdentity.generate()
    fields = vector_fields(device_id=identity.device_id)
    result = verify(
        device_id=identity.device_id,
        public_key=identity.public_key_b64url,
        signature=identity.sign(build_payload_v3(fields)),
        fields=fields,
    )
    assert result.public_key_raw == identity.public_key_raw


# --- each §4.4 failure by its code ----------------------------------------------------------


def test_undecodable_public_key_fails_with_public_key_invalid() -> None:
    assert error_code_of(public_key="not base64!") == DEVICE_AUTH_PUBLIC_KEY_INVALID


def test_public_key_of_wrong_length_fails_with_public_key_invalid() -> None:
    short = base64.urlsafe_b64encode(RAW_PUBLIC_KEY[:31]).decode().rstrip("=")
    assert error_code_of(public_key=short) == DEVICE_AUTH_PUBLIC_KEY_INVALID


def test_device_id_of_other_key_fails_with_device_id_mismatch() -> None:
    other_id = device_id_for(b"\x01" * 32)
    assert error_code_of(device_id=other_id) == DEVICE_AUTH_DEVICE_ID_MISMATCH


def test_signed_at_too_old_fails_with_signature_expired() -> None:
    assert error_code_of(now_ms=SIGNED_AT + 120_001) == DEVICE_AUTH_SIGNATURE_EXPIRED


def test_signed_at_too_far_in_future_fails_with_signature_expired() -> None:
    assert error_code_of(now_ms=SIGNED_AT - 120_001) == DEVICE_AUTH_SIGNATURE_EXPIRED


def test_empty_nonce_fails_with_nonce_required() -> None:
    assert error_code_of(nonce="") == DEVICE_AUTH_NONCE_REQUIRED


def test_whitespace_only_nonce_fails_with_nonce_required() -> None:
    assert error_code_of(nonce=" \t\n") == DEVICE_AUTH_NONCE_REQUIRED


def test_other_nonce_fails_with_nonce_mismatch() -> None:
    assert error_code_of(challenge_nonce="nonce-xyz") == DEVICE_AUTH_NONCE_MISMATCH


def test_signature_over_other_payload_fails_with_signature_invalid() -> None:
    other = DeviceIdentity.from_seed(SEED).sign("v3|something else")
    assert error_code_of(signature=other) == DEVICE_AUTH_SIGNATURE_INVALID


def test_signature_over_changed_field_fails_with_signature_invalid() -> None:
    fields = vector_fields(scopes=("operator.read", "operator.admin"))
    assert error_code_of(fields=fields) == DEVICE_AUTH_SIGNATURE_INVALID


def test_malformed_signature_fails_with_signature_invalid() -> None:
    assert error_code_of(signature="!!!") == DEVICE_AUTH_SIGNATURE_INVALID


def test_signature_of_wrong_length_fails_with_signature_invalid() -> None:
    assert error_code_of(signature=V3_SIGNATURE[:-4]) == DEVICE_AUTH_SIGNATURE_INVALID


def test_error_carries_openclaw_reason_and_clawgate_message() -> None:
    with pytest.raises(DeviceAuthError) as info:
        verify(signature=V3_SIGNATURE[:-4])
    assert info.value.code == "DEVICE_AUTH_SIGNATURE_INVALID"
    assert info.value.reason == "device-signature"
    assert info.value.message == "device signature invalid"
    assert str(info.value) == "device signature invalid"


@pytest.mark.parametrize(
    ("code", "reason", "message"),
    [
        (DEVICE_AUTH_PUBLIC_KEY_INVALID, "device-public-key", "device public key invalid"),
        (DEVICE_AUTH_DEVICE_ID_MISMATCH, "device-id-mismatch", "device identity mismatch"),
        (DEVICE_AUTH_SIGNATURE_EXPIRED, "device-signature-stale", "device signature expired"),
        (DEVICE_AUTH_NONCE_REQUIRED, "device-nonce-missing", "device nonce required"),
        (DEVICE_AUTH_NONCE_MISMATCH, "device-nonce-mismatch", "device nonce mismatch"),
        (DEVICE_AUTH_SIGNATURE_INVALID, "device-signature", "device signature invalid"),
    ],
)
def test_each_code_maps_to_spec_reason_and_message(code: str, reason: str, message: str) -> None:
    error = DeviceAuthError(code)  # type: ignore[arg-type]
    assert (error.code, error.reason, error.message) == (code, reason, message)


# --- order of checks ------------------------------------------------------------------------


def test_bad_key_is_reported_before_bad_nonce() -> None:
    assert error_code_of(public_key="bad", nonce="") == DEVICE_AUTH_PUBLIC_KEY_INVALID


def test_bad_key_is_reported_before_device_id_mismatch() -> None:
    assert error_code_of(public_key="bad", device_id="x") == DEVICE_AUTH_PUBLIC_KEY_INVALID


def test_device_id_mismatch_is_reported_before_expired_signature() -> None:
    code = error_code_of(device_id="x", now_ms=0)
    assert code == DEVICE_AUTH_DEVICE_ID_MISMATCH


def test_expired_signature_is_reported_before_missing_nonce() -> None:
    assert error_code_of(now_ms=0, nonce="") == DEVICE_AUTH_SIGNATURE_EXPIRED


def test_missing_nonce_is_reported_before_nonce_mismatch() -> None:
    assert error_code_of(nonce=" ", challenge_nonce="nonce-abc") == DEVICE_AUTH_NONCE_REQUIRED


def test_nonce_mismatch_is_reported_before_bad_signature() -> None:
    code = error_code_of(challenge_nonce="other", signature="!!!")
    assert code == DEVICE_AUTH_NONCE_MISMATCH


def test_fields_disagreeing_with_device_arguments_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="same device block"):
        verify_device(
            device_id=DEVICE_ID,
            public_key=PUBLIC_KEY_B64URL,
            signature=V3_SIGNATURE,
            signed_at_ms=SIGNED_AT,
            nonce=NONCE,
            challenge_nonce=NONCE,
            fields=vector_fields(nonce="other"),
            now_ms=SIGNED_AT,
        )


# --- public key encodings -------------------------------------------------------------------


def test_decode_public_key_accepts_unpadded_base64url() -> None:
    assert decode_public_key(PUBLIC_KEY_B64URL) == RAW_PUBLIC_KEY


def test_decode_public_key_accepts_padded_base64url() -> None:
    assert decode_public_key(PUBLIC_KEY_B64URL + "=") == RAW_PUBLIC_KEY


def test_decode_public_key_accepts_standard_base64() -> None:
    std = base64.b64encode(RAW_PUBLIC_KEY).decode()
    assert "/" in std or "+" in std  # the vector key exercises the non-url alphabet
    assert decode_public_key(std) == RAW_PUBLIC_KEY


def test_decode_public_key_accepts_pem_spki() -> None:
    assert decode_public_key(pem_of(RAW_PUBLIC_KEY)) == RAW_PUBLIC_KEY


def test_decode_public_key_accepts_pem_with_wrapped_body() -> None:
    der = bytes.fromhex("302a300506032b6570032100") + RAW_PUBLIC_KEY
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 20))
    pem = f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----"
    assert decode_public_key(pem) == RAW_PUBLIC_KEY


def test_decode_public_key_rejects_pem_of_non_ed25519_prefix() -> None:
    der = bytes.fromhex("302a300506032b656e032100") + RAW_PUBLIC_KEY  # X25519 OID
    body = base64.b64encode(der).decode()
    pem = f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----"
    with pytest.raises(DeviceAuthError) as info:
        decode_public_key(pem)
    assert info.value.code == DEVICE_AUTH_PUBLIC_KEY_INVALID


def test_decode_public_key_rejects_33_bytes() -> None:
    value = base64.urlsafe_b64encode(RAW_PUBLIC_KEY + b"\x00").decode()
    with pytest.raises(DeviceAuthError) as info:
        decode_public_key(value)
    assert info.value.code == DEVICE_AUTH_PUBLIC_KEY_INVALID


def test_decode_public_key_rejects_empty_string() -> None:
    with pytest.raises(DeviceAuthError) as info:
        decode_public_key("")
    assert info.value.code == DEVICE_AUTH_PUBLIC_KEY_INVALID


def test_decode_public_key_rejects_wrong_padding() -> None:
    with pytest.raises(DeviceAuthError):
        decode_public_key(PUBLIC_KEY_B64URL + "==")


def test_decode_signature_accepts_unpadded_base64url() -> None:
    assert len(decode_signature(V3_SIGNATURE)) == 64


def test_decode_signature_rejects_63_bytes() -> None:
    value = base64.urlsafe_b64encode(b"\x00" * 63).decode()
    with pytest.raises(DeviceAuthError) as info:
        decode_signature(value)
    assert info.value.code == DEVICE_AUTH_SIGNATURE_INVALID


def test_encode_public_key_rejects_wrong_length() -> None:
    with pytest.raises(ValueError):
        encode_public_key(b"\x00" * 31)


# --- normalisation and token selection ------------------------------------------------------


def test_normalize_trims_and_lowercases_ascii() -> None:
    assert normalize_ascii_lower("  IOS  ") == "ios"


def test_normalize_leaves_non_ascii_capitals_unchanged() -> None:
    assert normalize_ascii_lower("İOS") == "İos"


def test_normalize_leaves_non_ascii_letters_other_than_a_to_z_unchanged() -> None:
    assert normalize_ascii_lower("ÄPFEL") == "Äpfel"


def test_normalize_maps_none_to_empty_string() -> None:
    assert normalize_ascii_lower(None) == ""


def test_normalize_trims_like_javascript() -> None:
    assert normalize_ascii_lower("\ufeff\u00a0MacOS\u3000") == "macos"


def test_scopes_are_signed_in_order_sent_without_dedupe() -> None:
    fields = vector_fields(scopes=("operator.read", "operator.admin", "operator.read"))
    assert "|operator.read,operator.admin,operator.read|" in build_payload_v2(fields)


def test_omitted_scopes_sign_as_empty_field() -> None:
    fields = vector_fields(scopes=())
    assert build_payload_v2(fields) == (
        f"v2|{DEVICE_ID}|cli|cli|operator||1700000000000||nonce-abc"
    )


def test_role_defaults_to_operator() -> None:
    fields = SignedFields(
        device_id="d", client_id="cli", client_mode="cli", signed_at_ms=1, nonce="n"
    )
    assert fields.role == "operator"


def test_select_signed_token_prefers_auth_token() -> None:
    assert select_signed_token("a", "b", "c") == "a"


def test_select_signed_token_falls_back_to_device_then_bootstrap_token() -> None:
    assert select_signed_token(None, "b", "c") == "b"
    assert select_signed_token(None, None, "c") == "c"


def test_select_signed_token_counts_empty_string_as_present() -> None:
    assert select_signed_token("", "b", "c") == ""


def test_select_signed_token_is_empty_when_none_present() -> None:
    assert select_signed_token(None, None, None) == ""


# --- DeviceIdentity -------------------------------------------------------------------------


def test_identity_repr_does_not_contain_seed() -> None:
    assert SEED.hex() not in repr(DeviceIdentity.from_seed(SEED))
    assert repr(SEED) not in repr(DeviceIdentity.from_seed(SEED))


def test_identity_seed_round_trips() -> None:
    assert DeviceIdentity.from_seed(DeviceIdentity.from_seed(SEED).seed).seed == SEED


def test_identity_rejects_seed_of_wrong_length() -> None:
    with pytest.raises(ValueError):
        DeviceIdentity.from_seed(b"\x00" * 31)


def test_identity_rejects_public_key_not_matching_seed() -> None:
    with pytest.raises(ValueError):
        DeviceIdentity(SEED, b"\x00" * 32)
