"""The hub's HTTP surface: operator API, daemon upgrade, health (control-plane spec §7.1).

Operator endpoints take the admin token only; ``/v1/daemon`` takes daemon keys only. Every
error is ``{"error": {"code", "message"}}`` with a message that says what to do; secret values
never appear in a response.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiohttp import web

from ..protocol.control_link import InvalidMessage
from ..protocol.nesting import nesting_error, nesting_exceeds
from .core import MAX_WAIT_S, HubCore, parse_command_input
from .desired import DesiredInvalid
from .keys import hash_key, tokens_equal
from .link import DaemonLink
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .store import HubStoreError, RevisionConflict

__all__ = ["ADMIN", "DAEMON_KEY", "PUBLIC", "ROUTES", "HubHttpError", "Route", "add_routes"]

logger = logging.getLogger(__name__)

CORE_KEY: Final = web.AppKey("hub_core", HubCore)
#: How many reports or commands a listing returns by default, and at most (`?limit=`).
DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 200
MAX_BODY_BYTES: Final = 8 * 1024 * 1024
_LABEL_MAX: Final = 200

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HubHttpError(Exception):
    """An operator-facing error: HTTP status, stable code, one line saying what to do."""

    def __init__(
        self, status: int, code: str, message: str, *, errors: list[Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(exc: HubHttpError) -> web.Response:
    body: dict[str, Any] = {"error": {"code": exc.code, "message": exc.message}}
    if exc.errors is not None:
        body["errors"] = exc.errors
    response = _json(body, exc.status)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _core(request: web.Request) -> HubCore:
    return request.app[CORE_KEY]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HubHttpError as exc:
        return _error(exc)
    except web.HTTPException:
        raise
    except HubStoreError:
        logger.exception("hub database error on %s %s", request.method, request.path)
        return _error(
            HubHttpError(503, "UNAVAILABLE", "the hub database is unavailable; retry shortly")
        )
    except Exception:
        # Never str(exc) to a client: it may quote a request body holding secrets.
        logger.exception("unexpected error on %s %s", request.method, request.path)
        return _error(HubHttpError(500, "INTERNAL", "the hub failed; see its log and retry"))


def _require_admin(request: web.Request) -> None:
    token = _bearer(request)
    expected = _core(request).settings.admin_token
    if token is None or not tokens_equal(token, expected):
        raise HubHttpError(
            401,
            "UNAUTHORIZED",
            "send the hub admin token as 'Authorization: Bearer <token>' (see hub.toml)",
        )


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        raise HubHttpError(400, "INVALID_REQUEST", "send a JSON object as the request body")
    return _parse_json(raw)


def _parse_json(raw: bytes) -> Any:
    """Parse a body, refusing nesting deeper than the limit before anything recurses."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise HubHttpError(400, "INVALID_REQUEST", "the body is not valid JSON") from None
    if nesting_exceeds(body):
        raise HubHttpError(400, "INVALID_REQUEST", f"the body is {nesting_error()}")
    return body


def _invalid(what: str, errors: list[Any]) -> HubHttpError:
    return HubHttpError(
        422,
        "VALIDATION_FAILED",
        f"{what} breaks {len(errors)} rule(s); fix those listed in errors",
        errors=list(errors),
    )


def _no_daemon(daemon_id: str) -> HubHttpError:
    return HubHttpError(404, "NOT_FOUND", f"no daemon {daemon_id}; list them with GET /v1/daemons")


def _wait(request: web.Request) -> float:
    text = request.query.get("wait")
    if text is None:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_WAIT_S:
        raise HubHttpError(
            400, "INVALID_REQUEST", f"wait must be a number of seconds from 0 to {MAX_WAIT_S:g}"
        )
    return value


async def _daemon_or_404(request: web.Request) -> str:
    daemon_id = request.match_info["daemonId"]
    if await _core(request).get_daemon(daemon_id) is None:
        raise _no_daemon(daemon_id)
    return daemon_id


# Operator endpoints


async def list_daemons(request: web.Request) -> web.Response:
    """List every known daemon."""
    daemons = await _core(request).list_daemons()
    return _json({"daemons": [d.to_json() for d in daemons]})


async def get_daemon(request: web.Request) -> web.Response:
    """Show one daemon with its plugins and last report."""
    daemon_id = request.match_info["daemonId"]
    daemon = await _core(request).get_daemon(daemon_id)
    if daemon is None:
        raise _no_daemon(daemon_id)
    return _json(daemon.to_json(detail=True))


async def get_desired(request: web.Request) -> web.Response:
    """Show a daemon's desired state with secret names only."""
    core = _core(request)
    record = await core.store.get_desired(request.match_info["daemonId"])
    return _json(core.desired_view(record))


async def put_desired(request: web.Request) -> web.Response:
    """Store the next desired-state revision."""
    core = _core(request)
    body = await _body(request)
    try:
        record = await core.put_desired(request.match_info["daemonId"], body)
    except DesiredInvalid as exc:
        raise _invalid("the desired state", exc.errors) from None
    except RevisionConflict as exc:
        raise HubHttpError(
            409,
            "REVISION_CONFLICT",
            f"ifRevision is stale: the desired state is at revision {exc.current}; "
            "read it again and retry",
        ) from None
    return _json({"revision": record.revision})


async def post_command(request: web.Request) -> web.Response:
    """Issue a command and optionally wait for its terminal ack."""
    core = _core(request)
    wait = _wait(request)
    body = await _body(request)
    try:
        command = parse_command_input(body)
    except InvalidMessage as exc:
        raise _invalid("the command", exc.errors) from None
    # Encoded before it is stored and answered 201: what cannot reach the daemon is refused
    # now, never left pending (a COMMAND carries its params and little else).
    try:
        encoded = orjson.dumps(body)
    except (TypeError, orjson.JSONEncodeError):
        raise HubHttpError(400, "INVALID_REQUEST", "the command cannot be encoded") from None
    if len(encoded) > core.settings.max_message_bytes:
        raise HubHttpError(
            413,
            "PAYLOAD_TOO_LARGE",
            f"the command is over {core.settings.max_message_bytes} bytes encoded; send less",
        )
    record, _created = await core.post_command(request.match_info["daemonId"], command, wait_s=wait)
    return _json(record.to_json(), 200 if record.terminal else 202)


async def get_command(request: web.Request) -> web.Response:
    """Show a command's state, ack history and outcome, optionally waiting for the end."""
    core = _core(request)
    wait = _wait(request)
    command_id = request.match_info["commandId"]
    record = await core.wait_command(command_id, wait)
    if record is None:
        raise HubHttpError(404, "NOT_FOUND", f"no command {command_id}; check the commandId")
    return _json(record.to_json())


def _limit(request: web.Request) -> int:
    text = request.query.get("limit", str(DEFAULT_LIMIT))
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise HubHttpError(
            400, "INVALID_REQUEST", f"limit must be an integer from 1 to {MAX_LIMIT}"
        )
    return int(text)


async def list_commands(request: web.Request) -> web.Response:
    """List a daemon's recent commands, newest first (without their ack history)."""
    limit = _limit(request)
    daemon_id = await _daemon_or_404(request)
    records = await _core(request).store.list_commands(daemon_id, limit)
    return _json({"commands": [record.to_json() for record in records]})


async def list_reports(request: web.Request) -> web.Response:
    """Show a daemon's recent reports, newest first."""
    limit = _limit(request)
    daemon_id = await _daemon_or_404(request)
    reports = await _core(request).store.list_reports(daemon_id, limit)
    return _json({"reports": reports})


async def create_key(request: web.Request) -> web.Response:
    """Issue a daemon key; the response is the only place the key ever appears."""
    raw = await request.read()
    label = ""
    if raw:
        body = _parse_json(raw)
        given = body.get("label", "") if isinstance(body, dict) else None
        if not isinstance(given, str) or len(given) > _LABEL_MAX:
            raise HubHttpError(
                400, "INVALID_REQUEST", f"label must be a string of at most {_LABEL_MAX} chars"
            )
        label = given
    issued = await _core(request).issue_key(label)
    return _json({**issued.record.to_json(), "key": issued.key}, 201)


async def list_keys(request: web.Request) -> web.Response:
    """List daemon keys (ids and labels, never the keys)."""
    keys = await _core(request).store.list_keys()
    return _json({"keys": [k.to_json() for k in keys]})


async def revoke_key(request: web.Request) -> web.Response:
    """Revoke a daemon key and close links that use it."""
    key_id = request.match_info["keyId"]
    record = await _core(request).revoke_key(key_id)
    if record is None:
        raise HubHttpError(404, "NOT_FOUND", f"no key {key_id}; list them with GET /v1/keys")
    return _json(record.to_json())


# Daemon link and health


async def daemon_link(request: web.Request) -> web.StreamResponse:
    """Upgrade an authenticated daemon to its control link."""
    core = _core(request)
    if core.stopping:
        raise HubHttpError(503, "UNAVAILABLE", "the hub is stopping; reconnect shortly")
    token = _bearer(request)
    if token is not None and tokens_equal(token, core.settings.admin_token):
        raise HubHttpError(
            401,
            "UNAUTHORIZED",
            "the admin token cannot open a control link; use a key from `clawgate hub keys create`",
        )
    key = await core.store.find_key(hash_key(token)) if token else None
    if key is None:
        raise HubHttpError(
            401,
            "UNAUTHORIZED",
            "unknown or revoked daemon key; create one with `clawgate hub keys create`",
        )
    ws = web.WebSocketResponse(
        max_msg_size=core.settings.max_message_bytes, autoping=True, heartbeat=None
    )
    await ws.prepare(request)
    link = DaemonLink(core, ws, key)
    core.add_link(link)
    await link.run()
    return ws


async def healthz(request: web.Request) -> web.Response:
    """Answer while the process runs."""
    return _json({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    """Answer 200 when the database and the bus are reachable."""
    core = _core(request)
    checks = {"database": True, "bus": True}
    try:
        await core.store.ping()
    except Exception:
        checks["database"] = False
    try:
        await core.bus.ping()
    except Exception:
        checks["bus"] = False
    ok = all(checks.values()) and not core.stopping
    return _json({"ok": ok, **checks}, 200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """Serve this instance's Prometheus metrics (held daemons, bus lag, sweep repairs)."""
    body = _core(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


ADMIN: Final = "admin token"
DAEMON_KEY: Final = "daemon key"
PUBLIC: Final = "none"


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP endpoint: what it answers, and who may call it (`auth`)."""

    method: str
    path: str
    handler: Handler
    auth: str


#: Every endpoint of the hub; docs/hub-api.md documents each (tests/unit/test_hub_api_doc.py).
ROUTES: Final = (
    Route("GET", "/v1/daemons", list_daemons, ADMIN),
    Route("GET", "/v1/daemons/{daemonId}", get_daemon, ADMIN),
    Route("GET", "/v1/daemons/{daemonId}/desired-state", get_desired, ADMIN),
    Route("PUT", "/v1/daemons/{daemonId}/desired-state", put_desired, ADMIN),
    Route("POST", "/v1/daemons/{daemonId}/commands", post_command, ADMIN),
    Route("GET", "/v1/daemons/{daemonId}/commands", list_commands, ADMIN),
    Route("GET", "/v1/daemons/{daemonId}/reports", list_reports, ADMIN),
    Route("GET", "/v1/commands/{commandId}", get_command, ADMIN),
    Route("GET", "/v1/keys", list_keys, ADMIN),
    Route("POST", "/v1/keys", create_key, ADMIN),
    Route("DELETE", "/v1/keys/{keyId}", revoke_key, ADMIN),
    Route("GET", "/v1/daemon", daemon_link, DAEMON_KEY),
    Route("GET", "/healthz", healthz, PUBLIC),
    Route("GET", "/readyz", readyz, PUBLIC),
    Route("GET", "/metrics", metrics, PUBLIC),
)


def _admin_only(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        _require_admin(request)
        return await handler(request)

    guarded.__doc__ = handler.__doc__
    return guarded


def add_routes(app: web.Application, core: HubCore) -> None:
    """Mount every hub endpoint on ``app``."""
    app[CORE_KEY] = core
    app.middlewares.append(_errors)
    for route in ROUTES:
        if route.auth == ADMIN:
            app.router.add_route(route.method, route.path, _admin_only(route.handler))
        else:  # the link checks its key itself; health and metrics answer anyone
            app.router.add_get(route.path, route.handler)
