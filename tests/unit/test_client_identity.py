"""The client's device identity, device tokens, connect signing and TLS pin, without sockets."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from clawgate.client import (
    DeviceTokenStore,
    GatewayClient,
    IdentityError,
    StoredToken,
    load_or_create_identity,
)
from clawgate.client._frames import (
    Event,
    build_connect_params,
    issued_device_token,
    parse_challenge,
    sign_device,
)
from clawgate.client._identity import (
    DEVICE_AUTH_FILE,
    DEVICE_IDENTITY_FILE,
    parse_tls_fingerprint,
)
from clawgate.protocol.connect import ConnectParams
from clawgate.protocol.device_auth import (
    DeviceAuthError,
    DeviceIdentity,
    SignedFields,
    VerifiedDevice,
    select_signed_token,
    verify_device,
)

# RFC 8032 §7.1 TEST 1 key and the signature of spec §4.3.
VECTOR_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
VECTOR_SIGNATURE = (
    "Lw5GUjj3SAho4VN5WWfcQIu983XkP8-REW5QHFggFfbFLNOzAKR0ukiJf3Bl40tEiNMvTqobNMN-AhGtXKIfDg"
)
NONCE = "2b0d4a8e-6f7c-4f1e-9d55-1a2b3c4d5e6f"
SIGNED_AT = 1_700_000_000_000
FINGERPRINT = "a1" * 32


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document))


# -- the identity file ----------------------------------------------------------------------


def test_identity_is_created_once_and_reloaded_with_the_same_device_id(tmp_path: Path) -> None:
    first = load_or_create_identity(tmp_path)
    second = load_or_create_identity(tmp_path)

    assert second.device_id == first.device_id
    assert second.seed == first.seed


def test_identity_file_holds_version_device_id_public_key_and_seed(tmp_path: Path) -> None:
    identity = load_or_create_identity(tmp_path)

    document = read_json(tmp_path / "identity" / "device.json")
    assert document == {
        "version": 1,
        "deviceId": identity.device_id,
        "publicKey": identity.public_key_b64url,
        "seed": base64.urlsafe_b64encode(identity.seed).rstrip(b"=").decode(),
    }


def test_identity_directory_is_0700_and_file_0600(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path)

    assert mode_of(tmp_path / "identity") == 0o700
    assert mode_of(tmp_path / DEVICE_IDENTITY_FILE) == 0o600
    assert [p.name for p in (tmp_path / "identity").iterdir()] == ["device.json"]  # no temp file


def test_identity_creates_a_missing_home(tmp_path: Path) -> None:
    home = tmp_path / "not" / "yet"

    identity = load_or_create_identity(home)

    assert (home / DEVICE_IDENTITY_FILE).is_file()
    assert mode_of(home) == 0o700
    assert load_or_create_identity(home).device_id == identity.device_id


def test_identity_file_with_loose_mode_is_tightened_on_load(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path)
    path = tmp_path / DEVICE_IDENTITY_FILE
    path.chmod(0o644)

    load_or_create_identity(tmp_path)

    assert mode_of(path) == 0o600


def test_identity_from_an_existing_file_is_used_as_is(tmp_path: Path) -> None:
    vector = DeviceIdentity.from_seed(VECTOR_SEED)
    write_json(
        tmp_path / DEVICE_IDENTITY_FILE,
        {
            "version": 1,
            "deviceId": vector.device_id.upper(),
            "publicKey": vector.public_key_b64url,
            "seed": base64.urlsafe_b64encode(VECTOR_SEED).decode(),  # padded is accepted
        },
    )

    assert load_or_create_identity(tmp_path).device_id == vector.device_id


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"[1, 2]",
        b'{"version": 2, "deviceId": "x", "publicKey": "y", "seed": "z"}',
        b'{"version": 1, "deviceId": "x", "publicKey": "y"}',
        b'{"version": 1, "deviceId": "x", "publicKey": "y", "seed": "not base64 !"}',
        b'{"version": 1, "deviceId": "x", "publicKey": "y", "seed": "c2hvcnQ"}',
    ],
    ids=["empty", "not-json", "not-object", "version", "no-seed", "bad-seed", "short-seed"],
)
def test_corrupt_identity_file_raises_and_is_left_alone(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / DEVICE_IDENTITY_FILE
    path.parent.mkdir(mode=0o700)
    path.write_bytes(content)

    with pytest.raises(IdentityError) as caught:
        load_or_create_identity(tmp_path)

    assert str(path) in str(caught.value)
    assert caught.value.path == path
    assert path.read_bytes() == content


@pytest.mark.parametrize("field", ["deviceId", "publicKey"])
def test_identity_file_not_matching_its_seed_raises(tmp_path: Path, field: str) -> None:
    load_or_create_identity(tmp_path)
    path = tmp_path / DEVICE_IDENTITY_FILE
    document = read_json(path)
    other = DeviceIdentity.generate()
    document[field] = other.device_id if field == "deviceId" else other.public_key_b64url
    write_json(path, document)

    with pytest.raises(IdentityError, match=f"{field} does not match its seed"):
        load_or_create_identity(tmp_path)


def test_identity_error_never_contains_the_seed(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path)
    path = tmp_path / DEVICE_IDENTITY_FILE
    document = read_json(path)
    document["deviceId"] = "0" * 64
    write_json(path, document)

    with pytest.raises(IdentityError) as caught:
        load_or_create_identity(tmp_path)

    assert document["seed"] not in str(caught.value)


# -- device tokens --------------------------------------------------------------------------


@pytest.fixture
def identity() -> DeviceIdentity:
    return DeviceIdentity.from_seed(VECTOR_SEED)


@pytest.fixture
def store(tmp_path: Path, identity: DeviceIdentity) -> DeviceTokenStore:
    return DeviceTokenStore.in_home(tmp_path, identity)


def test_token_store_round_trips_a_token(store: DeviceTokenStore) -> None:
    store.put("operator", "tok-1", ["operator.read", "operator.write"], 1234)

    assert store.get("operator") == StoredToken(
        "operator", "tok-1", ("operator.read", "operator.write"), 1234
    )


def test_token_store_keeps_one_token_per_role(store: DeviceTokenStore) -> None:
    store.put("operator", "tok-op", ["operator.read"], 1)
    store.put("node", "tok-node", [], 2)
    store.put("operator", "tok-op-2", ["operator.admin"], 3)

    operator, node = store.get("operator"), store.get("node")
    assert operator is not None and operator.token == "tok-op-2"
    assert node is not None and node.token == "tok-node"


def test_token_store_forget_removes_only_that_role(store: DeviceTokenStore) -> None:
    store.put("operator", "tok-op", [], 1)
    store.put("node", "tok-node", [], 2)

    assert store.forget("operator") is True
    assert store.forget("operator") is False
    assert store.get("operator") is None
    assert store.get("node") is not None


def test_token_store_file_format_and_mode(
    tmp_path: Path, store: DeviceTokenStore, identity: DeviceIdentity
) -> None:
    store.put("operator", "tok-1", ["operator.read"], 1234)

    path = tmp_path / DEVICE_AUTH_FILE
    assert store.path == path
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700
    assert read_json(path) == {
        "version": 1,
        "deviceId": identity.device_id,
        "tokens": {"operator": {"token": "tok-1", "scopes": ["operator.read"], "issuedAtMs": 1234}},
    }


def test_token_store_ignores_tokens_of_another_device(
    tmp_path: Path, store: DeviceTokenStore
) -> None:
    other = DeviceIdentity.generate()
    DeviceTokenStore.in_home(tmp_path, other).put("operator", "not-mine", [], 1)

    assert store.get("operator") is None
    assert store.forget("operator") is False


def test_token_store_put_replaces_another_devices_file(
    tmp_path: Path, store: DeviceTokenStore, identity: DeviceIdentity
) -> None:
    other = DeviceIdentity.generate()
    DeviceTokenStore.in_home(tmp_path, other).put("node", "not-mine", [], 1)

    store.put("operator", "mine", [], 2)

    document = read_json(store.path)
    assert document["deviceId"] == identity.device_id
    assert set(document["tokens"]) == {"operator"}


def test_missing_or_corrupt_token_file_counts_as_empty(store: DeviceTokenStore) -> None:
    assert store.get("operator") is None
    store.path.parent.mkdir(mode=0o700)
    store.path.write_bytes(b"{oops")

    assert store.get("operator") is None
    store.put("operator", "fresh", [], 1)
    assert read_json(store.path)["tokens"]["operator"]["token"] == "fresh"


def test_malformed_token_entry_is_skipped(
    store: DeviceTokenStore, identity: DeviceIdentity
) -> None:
    write_json(
        store.path,
        {
            "version": 1,
            "deviceId": identity.device_id,
            "tokens": {
                "operator": {"token": "", "scopes": [], "issuedAtMs": 1},
                "node": {"token": "ok", "scopes": [], "issuedAtMs": 1},
            },
        },
    )

    assert store.get("operator") is None
    assert store.get("node") is not None


def test_stored_token_repr_hides_the_token() -> None:
    assert "s3cret" not in repr(StoredToken("operator", "s3cret", (), 1))


# -- signing connect params -----------------------------------------------------------------


def server_fields(params: dict[str, Any]) -> SignedFields:
    """Rebuild the signed fields from params the way the server does (spec §4.2)."""
    parsed = ConnectParams.model_validate(params)
    assert parsed.device is not None
    auth = parsed.auth
    return SignedFields(
        device_id=parsed.device.id,
        client_id=parsed.client.id,
        client_mode=parsed.client.mode,
        role=parsed.role,
        scopes=tuple(parsed.scopes),
        signed_at_ms=parsed.device.signedAt,
        token=select_signed_token(
            auth.token if auth else None,
            auth.deviceToken if auth else None,
            auth.bootstrapToken if auth else None,
        ),
        nonce=parsed.device.nonce,
        platform=parsed.client.platform,
        device_family=parsed.client.deviceFamily,
    )


def verify_as_server(params: dict[str, Any], now_ms: int = SIGNED_AT) -> VerifiedDevice:
    device = params["device"]
    return verify_device(
        device_id=device["id"],
        public_key=device["publicKey"],
        signature=device["signature"],
        signed_at_ms=device["signedAt"],
        nonce=device["nonce"],
        challenge_nonce=NONCE,
        fields=server_fields(params),
        now_ms=now_ms,
    )


def client_params(identity: DeviceIdentity, device_token: str | None = None, **kw: Any) -> Any:
    """Return the connect params ``GatewayClient(**kw)`` sends, signed as it signs them."""
    client = GatewayClient(identity=identity, **kw)
    params = client._dialer.connect_params(device_token=device_token)
    params["device"] = sign_device(params, identity, nonce=NONCE, signed_at_ms=SIGNED_AT)
    return params


def test_signature_matches_the_spec_test_vector(identity: DeviceIdentity) -> None:
    params = build_connect_params(
        min_protocol=3,
        max_protocol=4,
        client_id="cli",
        client_version="1.0",
        platform="linux",
        client_mode="cli",
        role="operator",
        scopes=["operator.admin", "operator.read"],
    )

    device = sign_device(params, identity, nonce="nonce-abc", signed_at_ms=SIGNED_AT)

    assert device == {
        "id": "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9",
        "publicKey": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        "signature": VECTOR_SIGNATURE,
        "signedAt": SIGNED_AT,
        "nonce": "nonce-abc",
    }


def test_client_params_with_shared_token_verify_as_v3(identity: DeviceIdentity) -> None:
    params = client_params(identity, token="shared", scopes=["operator.read", "operator.admin"])

    assert verify_as_server(params).payload_version == "v3"


def test_client_params_with_device_token_only_verify(identity: DeviceIdentity) -> None:
    params = client_params(identity, device_token="dev-tok", role="node", client_mode="node")

    assert params["auth"] == {"deviceToken": "dev-tok"}
    assert verify_as_server(params).device_id == identity.device_id


def test_client_params_with_token_and_device_token_sign_the_shared_token(
    identity: DeviceIdentity,
) -> None:
    params = client_params(identity, device_token="dev-tok", token="shared")

    assert params["auth"] == {"token": "shared", "deviceToken": "dev-tok"}
    assert server_fields(params).token == "shared"
    verify_as_server(params)


def test_client_params_with_password_verify(identity: DeviceIdentity) -> None:
    verify_as_server(client_params(identity, password="pw", scopes=[]))


def test_client_params_with_platform_and_family_verify_after_normalisation(
    identity: DeviceIdentity,
) -> None:
    params = client_params(identity, platform="  Linux ", device_family="Desktop")

    assert params["client"]["deviceFamily"] == "Desktop"
    verify_as_server(params)


def test_signature_covers_extra_connect_params_that_replace_built_members(
    identity: DeviceIdentity,
) -> None:
    client = {"id": "cli", "version": "2", "platform": "darwin", "mode": "cli"}
    params = client_params(
        identity, token="t", extra_connect_params={"client": client, "scopes": ["operator.read"]}
    )

    assert server_fields(params).client_id == "cli"
    verify_as_server(params)


def test_tampered_params_fail_verification(identity: DeviceIdentity) -> None:
    params = client_params(identity, token="t", scopes=["operator.read"])
    params["scopes"] = ["operator.admin"]

    with pytest.raises(DeviceAuthError) as caught:
        verify_as_server(params)
    assert caught.value.code == "DEVICE_AUTH_SIGNATURE_INVALID"


def test_challenge_gives_nonce_and_ts() -> None:
    assert parse_challenge(Event("connect.challenge", {"nonce": NONCE, "ts": 5})).ts == 5
    assert parse_challenge(Event("connect.challenge", {"nonce": NONCE})).ts is None
    assert parse_challenge(Event("connect.challenge", {"nonce": "n", "ts": True})).ts is None
    assert parse_challenge(Event("connect.challenge", {"nonce": ""})).nonce is None
    assert parse_challenge(Event("connect.challenge", None)).nonce is None


# -- device tokens in hello-ok --------------------------------------------------------------


def test_v4_hello_with_device_token_is_issued() -> None:
    hello = {
        "protocol": 4,
        "auth": {
            "role": "operator",
            "scopes": ["operator.read"],
            "deviceToken": "tok",
            "issuedAtMs": 7,
        },
    }

    issued = issued_device_token(hello, default_role="operator", now_ms=99)

    assert issued == StoredToken("operator", "tok", ("operator.read",), 7)


def test_v4_hello_without_device_token_issues_nothing() -> None:
    hello = {"protocol": 4, "auth": {"role": "operator", "scopes": ["operator.read"]}}

    assert issued_device_token(hello, default_role="operator", now_ms=99) is None


def test_v3_hello_auth_block_is_issued_and_missing_issued_at_uses_the_clock() -> None:
    hello = {"protocol": 3, "auth": {"deviceToken": "tok", "scopes": []}}

    issued = issued_device_token(hello, default_role="node", now_ms=99)

    assert issued == StoredToken("node", "tok", (), 99)
    assert issued_device_token({"protocol": 3}, default_role="node", now_ms=99) is None


# -- client options -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        FINGERPRINT,
        FINGERPRINT.upper(),
        ":".join([FINGERPRINT[i : i + 2] for i in range(0, 64, 2)]),
        ":".join([FINGERPRINT[i : i + 2].upper() for i in range(0, 64, 2)]),
        f"  {FINGERPRINT}\n",
    ],
    ids=["lower", "upper", "colons", "colons-upper", "whitespace"],
)
def test_tls_fingerprint_forms_parse_to_the_digest(value: str) -> None:
    assert parse_tls_fingerprint(value) == bytes.fromhex(FINGERPRINT)


@pytest.mark.parametrize(
    "value",
    [
        "",
        FINGERPRINT[:-1],
        FINGERPRINT + "00",
        "g" + FINGERPRINT[1:],
        "a1:" * 31 + "a",
        "a1:a1" + "a1" * 30,
        " ".join(["a1"] * 32),
        "a1" * 20,  # SHA-1 length
    ],
    ids=["empty", "short", "long", "non-hex", "short-pair", "mixed", "spaces", "sha1"],
)
def test_malformed_tls_fingerprint_is_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="tls_fingerprint"):
        parse_tls_fingerprint(value)


def test_client_accepts_a_fingerprint_for_a_wss_url() -> None:
    GatewayClient("wss://gateway.example:18789/", tls_fingerprint=FINGERPRINT)


@pytest.mark.parametrize(
    ("url", "fingerprint"),
    [("wss://gateway.example/", "nope"), ("ws://127.0.0.1:18789/", FINGERPRINT)],
    ids=["malformed", "plain-ws"],
)
def test_client_rejects_an_unusable_fingerprint_at_construction(url: str, fingerprint: str) -> None:
    with pytest.raises(ValueError, match="tls_fingerprint"):
        GatewayClient(url, tls_fingerprint=fingerprint)


def test_client_rejects_device_tokens_without_identity(store: DeviceTokenStore) -> None:
    with pytest.raises(ValueError, match="needs an identity"):
        GatewayClient(device_tokens=store)


def test_client_rejects_device_tokens_of_another_identity(store: DeviceTokenStore) -> None:
    with pytest.raises(ValueError, match="another device"):
        GatewayClient(identity=DeviceIdentity.generate(), device_tokens=store)


def test_client_rejects_identity_with_a_device_in_extra_params(identity: DeviceIdentity) -> None:
    with pytest.raises(ValueError, match="not both"):
        GatewayClient(identity=identity, extra_connect_params={"device": {}})
