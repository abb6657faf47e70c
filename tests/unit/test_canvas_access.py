"""The canvas host's auth decisions and its live-reload first frame (canvas/access.py, live.py)."""

from __future__ import annotations

import json

from clawgate.canvas.access import (
    CanvasAccess,
    Credentials,
    Denied,
    Grant,
    credentials_from_headers,
)
from clawgate.canvas.live import Admitted, Closing, LiveSocketMachine, reload_paths
from clawgate.gateway.access import GatewayAccess
from clawgate.protocol.auth import AuthMode, AuthThrottle, SharedSecretAuth
from clawgate.protocol.limits import CANVAS_AUTH_FRAME_MAX_BYTES, Limits
from clawgate.protocol.pairing import Applicant, PairingRegistry

TOKEN = "gateway-token"
DEVICE_TOKEN = "device-token-value"
IP = "192.0.2.7"


def rules(mode: AuthMode = AuthMode.TOKEN, secret: str | None = TOKEN) -> GatewayAccess:
    return GatewayAccess(
        auth=SharedSecretAuth(mode, secret if mode is not AuthMode.NONE else None),
        throttle=AuthThrottle(Limits()),
        allowed_origins=frozenset({"https://ops.example"}),
    )


def paired_device() -> tuple[PairingRegistry, str]:
    registry = PairingRegistry(tokens=lambda: DEVICE_TOKEN)
    applicant = Applicant(
        device_id="d" * 64,
        public_key="key",
        role="node",
        scopes=(),
        platform="linux",
        device_family=None,
    )
    request, _, _ = registry.request(applicant, "not-paired", 0)
    record = registry.approve(request.request_id, 1)
    registry.issue(record.device_id, "node", (), 2, None)
    return registry, record.device_id


def access_for(gateway: GatewayAccess, registry: PairingRegistry | None = None) -> CanvasAccess:
    pairing = registry or PairingRegistry()

    def device_token_ok(device_id: str, token: str) -> bool:
        return any(pairing.token_matches(device_id, role, token) for role in ("operator", "node"))

    return CanvasAccess(gateway, device_token_ok, failure_delay_ms=250)


def test_the_gateway_token_is_granted() -> None:
    decision = access_for(rules()).admit(Credentials(token=TOKEN), IP, 0)
    assert isinstance(decision, Grant)


def test_a_wrong_token_is_refused_with_the_gateways_message_and_delay() -> None:
    decision = access_for(rules()).admit(Credentials(token="nope"), IP, 0)
    assert decision == Denied(
        "unauthorized: gateway token mismatch (provide gateway auth token)", delay_ms=250
    )


def test_no_credential_is_refused_when_the_gateway_has_a_secret() -> None:
    decision = access_for(rules()).admit(Credentials(), IP, 0)
    assert isinstance(decision, Denied) and "token missing" in decision.message


def test_the_password_is_granted_in_password_mode() -> None:
    access = access_for(rules(AuthMode.PASSWORD, "pw"))
    assert isinstance(access.admit(Credentials(password="pw"), IP, 0), Grant)
    assert isinstance(access.admit(Credentials(token="pw"), IP, 0), Denied)


def test_anyone_is_granted_when_the_gateway_has_no_auth() -> None:
    access = access_for(rules(AuthMode.NONE))
    assert isinstance(access.admit(Credentials(), IP, 0), Grant)


def test_a_paired_devices_token_with_its_id_is_granted() -> None:
    registry, device_id = paired_device()
    credentials = Credentials(device_id=device_id, device_token=DEVICE_TOKEN)
    decision = access_for(rules(), registry).admit(credentials, IP, 0)
    assert isinstance(decision, Grant)
    assert (decision.device_id, decision.device_token) == (device_id, DEVICE_TOKEN)


def test_a_device_token_without_its_device_id_is_refused() -> None:
    registry, _ = paired_device()
    decision = access_for(rules(), registry).admit(Credentials(device_token=DEVICE_TOKEN), IP, 0)
    assert isinstance(decision, Denied) and "device token mismatch" in decision.message


def test_ten_failures_lock_the_address_out_of_the_canvas_and_the_gateway() -> None:
    gateway = rules()
    access = access_for(gateway)
    for _ in range(10):
        access.admit(Credentials(token="guess"), IP, 1_000)
    locked = access.admit(Credentials(token=TOKEN), IP, 1_000)
    assert isinstance(locked, Denied) and locked.retry_after_ms == 60_000
    assert gateway.throttle.lockout_remaining_ms(IP, 1_000) == 60_000


def test_loopback_is_locked_out_like_any_address() -> None:
    access = access_for(rules())
    for _ in range(10):
        access.admit(Credentials(token="guess"), "127.0.0.1", 0)
    assert isinstance(access.admit(Credentials(token=TOKEN), "127.0.0.1", 0), Denied)


def test_a_device_token_beside_a_secret_guess_counts_as_a_secret_guess() -> None:
    gateway = rules()
    access = access_for(gateway)
    for _ in range(10):
        access.admit(Credentials(token="guess", device_id="d", device_token="x"), IP, 0)
    assert gateway.throttle.lockout_remaining_ms(IP, 0) == 60_000


def test_a_grant_lapses_when_the_secret_is_replaced() -> None:
    gateway = rules()
    access = access_for(gateway)
    grant = access.admit(Credentials(token=TOKEN), IP, 0)
    assert isinstance(grant, Grant) and access.still_valid(grant)
    assert gateway.replace_secret(AuthMode.TOKEN, "rotated")
    assert not access.still_valid(grant)


def test_a_device_grant_lapses_when_its_token_is_revoked() -> None:
    registry, device_id = paired_device()
    access = access_for(rules(), registry)
    grant = access.admit(Credentials(device_id=device_id, device_token=DEVICE_TOKEN), IP, 0)
    assert isinstance(grant, Grant) and access.still_valid(grant)
    registry.revoke(device_id, "node", 5)
    assert not access.still_valid(grant)


def test_origins_allowed_are_same_origin_loopback_and_configured() -> None:
    access = access_for(rules())
    assert access.origin_allowed(None, "192.0.2.1:18793", tls=False)
    assert access.origin_allowed("http://192.0.2.1:18793", "192.0.2.1:18793", tls=False)
    assert access.origin_allowed("http://localhost:5173", "192.0.2.1:18793", tls=False)
    assert access.origin_allowed("https://ops.example", "192.0.2.1:18793", tls=False)
    assert not access.origin_allowed("https://evil.example", "192.0.2.1:18793", tls=False)
    assert not access.origin_allowed("https://192.0.2.1:18793", "192.0.2.1:18793", tls=False)


def test_a_bearer_header_carries_the_shared_secret_of_the_mode() -> None:
    assert credentials_from_headers("Bearer abc", None, AuthMode.TOKEN) == Credentials(token="abc")
    assert credentials_from_headers("bearer abc", None, AuthMode.PASSWORD) == Credentials(
        password="abc"
    )
    assert credentials_from_headers("Bearer abc", "dev", AuthMode.TOKEN) == Credentials(
        device_id="dev", device_token="abc"
    )
    assert credentials_from_headers("Basic abc", None, AuthMode.TOKEN) == Credentials()
    assert credentials_from_headers(None, None, AuthMode.TOKEN) == Credentials()


# -- the live-reload socket's first frame -------------------------------------------------


def machine(gateway: GatewayAccess | None = None) -> LiveSocketMachine:
    return LiveSocketMachine(access_for(gateway or rules()), remote_ip=IP)


def auth_frame(**fields: object) -> str:
    return json.dumps({"type": "auth", **fields})


def test_an_auth_frame_with_the_token_admits_the_page_for_its_folder() -> None:
    outcome = machine().receive_text(auth_frame(token=TOKEN, page="/main/index.html"), 0)
    assert isinstance(outcome, Admitted) and outcome.scope == "main"


def test_a_page_at_the_top_or_without_a_page_hears_every_change() -> None:
    for frame in (auth_frame(token=TOKEN, page="/"), auth_frame(token=TOKEN, page="/%2e%2e/")):
        outcome = machine().receive_text(frame, 0)
        assert isinstance(outcome, Admitted) and outcome.scope == ""


def test_the_page_names_its_file_and_the_version_it_shows() -> None:
    frame = auth_frame(token=TOKEN, page="/main/", version="0a1b2c3d4e5f6071")
    outcome = machine().receive_text(frame, 0)
    assert isinstance(outcome, Admitted)
    assert (outcome.page, outcome.version) == ("main/index.html", "0a1b2c3d4e5f6071")
    for bad in ("", "not hex", "f" * 65, 17, None):
        outcome = machine().receive_text(auth_frame(token=TOKEN, page="/main/", version=bad), 0)
        assert isinstance(outcome, Admitted) and outcome.version == ""


def test_a_change_the_page_already_shows_is_not_announced() -> None:
    outcome = machine().receive_text(auth_frame(token=TOKEN, page="/main/a.html", version="ab"), 0)
    assert isinstance(outcome, Admitted)
    assert reload_paths(outcome, ["main/a.html"], {"main/a.html": "ab"}) == []
    # Written again since it was served, or gone: the page reloads.
    assert reload_paths(outcome, ["main/a.html"], {"main/a.html": "cd"}) == ["main/a.html"]
    assert reload_paths(outcome, ["main/a.html"], {"main/a.html": None}) == ["main/a.html"]
    # Anything else it may use changed with it: the page reloads for all of it.
    both = ["main/a.html", "main/style.css"]
    assert reload_paths(outcome, both, {"main/a.html": "ab"}) == both
    # Other agents' folders never reach it.
    assert reload_paths(outcome, ["other/a.html"], {}) == []


def test_a_page_that_showed_no_version_reloads_for_its_file() -> None:
    outcome = machine().receive_text(auth_frame(token=TOKEN, page="/main/a.html"), 0)
    assert isinstance(outcome, Admitted)
    assert reload_paths(outcome, ["main/a.html"], {"main/a.html": ""}) == ["main/a.html"]


def test_a_wrong_token_closes_with_1008_after_the_failure_delay() -> None:
    outcome = machine().receive_text(auth_frame(token="nope"), 0)
    assert outcome == Closing(
        1008, "unauthorized: gateway token mismatch (provide gateway auth token)", 250
    )


def test_a_first_frame_that_is_not_auth_closes_with_1008() -> None:
    for text in ("hello", "[]", json.dumps({"type": "reload"})):
        outcome = machine().receive_text(text, 0)
        assert isinstance(outcome, Closing) and outcome.code == 1008


def test_an_oversized_first_frame_closes_with_1009() -> None:
    outcome = machine().receive_text(auth_frame(token="x" * CANVAS_AUTH_FRAME_MAX_BYTES), 0)
    assert isinstance(outcome, Closing) and outcome.code == 1009


def test_binary_frames_and_silence_close_the_socket() -> None:
    assert machine().receive_binary().code == 1003
    assert machine().timed_out() == Closing(1000, "handshake timeout")
