"""Channels: `send` (spec §10.7) and `channels.*` (reserved in §13, made real here).

- `send` delivers an outbound message on a channel without running the agent; its
  `idempotencyKey` makes a retry return the first outcome (never a second message).
  `replyTo` is a clawgate extension (reply to a platform message id).
- `channels.status` lists every channel account: WebChat first, then each configured one
  (`channel` narrows it to one channel); the answer also carries OpenClaw's maps of them.
- `send` reaches every channel through its adapter; WebChat's peers are session keys, so
  its `to` is resolved like `chat.send`'s `sessionKey` (and `sessionKey` adds nothing).
- `channels.logout` stops an account and drops its platform session state; `channels.login`
  (clawgate extension) starts it again. WebChat, built in and always on, has neither.
- `channels.pairing.list|approve|reject` manage the DM pairing codes of unknown senders
  (`channels.pairing.dismiss` is OpenClaw's name for reject; `requestId` its name for code);
  the list also carries OpenClaw's `{accounts, requests, commandOwnerConfigured, limits}`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from ...protocol.detail_codes import (
    CHANNEL_NOT_CONFIGURED,
    DELIVERY_FAILED,
    PAIRING_CODE_NOT_FOUND,
)
from ...protocol.errors import NOT_LINKED, InvalidRequest, RequestError, Unavailable
from ...protocol.scopes import ADMIN, READ, WRITE
from ..context import CallContext
from ..registry import Idempotency, method
from ._common import (
    IdempotencyKey,
    Ignored,
    OpenResult,
    Params,
    Result,
    resolve_key,
)

if TYPE_CHECKING:
    from ...channels.runtime import ChannelRuntime
    from ..channel_service import ChannelService

__all__ = [
    "channels_login",
    "channels_logout",
    "channels_pairing_approve",
    "channels_pairing_dismiss",
    "channels_pairing_list",
    "channels_pairing_reject",
    "channels_status",
    "send",
]

Name = Annotated[str, Field(min_length=1, max_length=64)]
Id = Annotated[str, Field(min_length=1, max_length=256)]


class SendParams(Params):
    """Params of `send`."""

    to: Id
    message: Annotated[str, Field(max_length=1_000_000)] | None = None
    mediaUrl: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    mediaUrls: Annotated[list[str], Field(max_length=10)] | None = None
    channel: Name | None = None
    accountId: Name | None = None
    threadId: Id | None = None
    replyTo: Id | None = None
    sessionKey: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    agentId: str | None = None
    idempotencyKey: IdempotencyKey


class SendResult(Result):
    """Result of `send`."""

    runId: str
    messageId: str
    channel: str
    chatId: str | None = None


class ChannelAccountStatus(OpenResult):
    """One channel account in `channels.status`."""

    channel: str
    accountId: str
    enabled: bool
    running: bool
    connected: bool
    state: str
    lastInboundAt: int | None = None
    lastOutboundAt: int | None = None
    lastError: str | None = None
    reconnects: int


class ChannelsStatusParams(Params):
    """Params of `channels.status`."""

    channel: Name | None = None
    # OpenClaw 2026.9.6 probes a channel's platform on request; clawgate's entries are live.
    probe: Ignored = None
    timeoutMs: Ignored = None


class ChannelsStatusResult(Result):
    """Result of `channels.status`: clawgate's list and OpenClaw's maps of the same accounts."""

    ts: int
    channels: list[ChannelAccountStatus]
    channelOrder: list[str]
    channelLabels: dict[str, str]
    channelAccounts: dict[str, list[dict[str, Any]]]
    channelDefaultAccountId: dict[str, str]


class AccountParams(Params):
    """Params naming one channel account."""

    channel: Name
    accountId: Name | None = None


class AccountResult(OpenResult):
    """Result of `channels.login` / `channels.logout`."""

    channel: str
    accountId: str


class PairingEntry(Result):
    """A pending DM pairing code."""

    channel: str
    accountId: str
    sender: str
    senderName: str
    code: str
    createdAt: int
    expiresAt: int


class PairingListParams(Params):
    """Params of `channels.pairing.list`: narrow it to one channel and/or account."""

    channel: Name | None = None
    accountId: Name | None = None


class PairingAccount(Result):
    """An account whose unknown senders ask for a code (OpenClaw's shape)."""

    channel: str
    channelLabel: str
    accountId: str
    notifySupported: bool


class PairingRequestShape(Result):
    """A pending code as OpenClaw lists it (the code is the request id; ISO times)."""

    requestId: str
    channel: str
    channelLabel: str
    accountId: str
    senderId: str
    senderLabel: str
    metadata: dict[str, str] | None = None
    createdAt: str
    lastSeenAt: str
    expiresAt: str
    notifySupported: bool


class PairingLimits(Result):
    """How many codes an account keeps open, and for how long."""

    pendingPerAccount: int
    ttlMs: int


class PairingListResult(Result):
    """Result of `channels.pairing.list`: clawgate's `pending` and OpenClaw's members."""

    pending: list[PairingEntry]
    accounts: list[PairingAccount]
    requests: list[PairingRequestShape]
    commandOwnerConfigured: bool
    limits: PairingLimits


Code = Annotated[str, Field(min_length=1, max_length=32)]


class PairingParams(Params):
    """Params of `channels.pairing.approve|reject|dismiss`: the code, or OpenClaw's requestId.

    `requestId` is the code under OpenClaw's name (`channels.pairing.list` lists it so);
    `accountId`, when given, must be the account the code was issued on.
    """

    channel: Name
    code: Code | None = None
    requestId: Code | None = None
    accountId: Name | None = None
    # OpenClaw 2026.9.6's approve options: clawgate sends no approval notice and has no
    # command owners to bootstrap.
    notify: Ignored = None
    bootstrapCommandOwner: Ignored = None

    @model_validator(mode="after")
    def _one_code(self) -> PairingParams:
        if (self.code is None) == (self.requestId is None):
            raise ValueError("give the pairing code (code or requestId), once")
        return self

    @property
    def pairing_code(self) -> str:
        """The code, whichever name it came under."""
        return self.code or self.requestId or ""


class PairingResult(Result):
    """Result of `channels.pairing.approve|reject|dismiss` (clawgate's and OpenClaw's names)."""

    channel: str
    accountId: str
    sender: str
    approved: bool
    requestId: str
    senderId: str
    notification: Literal["not-requested"] | None = None
    commandOwnerBootstrap: Literal["not-requested"] | None = None


def _channels(ctx: CallContext) -> ChannelService:
    service = ctx.services.channels
    if service is None:
        raise Unavailable("channels need the state store; start the gateway with a home directory")
    return service


def _runtime(ctx: CallContext) -> ChannelRuntime:
    return _channels(ctx).runtime


def _mapped(exc: Exception) -> RequestError:
    """Return the wire error for a channel layer failure."""
    from ...channels.runtime import (
        BuiltInChannel,
        DeliveryFailed,
        MediaUnsupported,
        PairingCodeNotFound,
        UnknownChannel,
    )

    if isinstance(exc, UnknownChannel):
        return InvalidRequest(str(exc), details={"code": CHANNEL_NOT_CONFIGURED})
    if isinstance(exc, BuiltInChannel | MediaUnsupported):
        return InvalidRequest(str(exc))
    if isinstance(exc, PairingCodeNotFound):
        return InvalidRequest(str(exc), details={"code": PAIRING_CODE_NOT_FOUND})
    if isinstance(exc, DeliveryFailed):
        return Unavailable(str(exc), details={"code": DELIVERY_FAILED})
    return Unavailable(str(exc))


async def _answer(call: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Await a channel operation, turning its failure into the wire error."""
    from ...channels.base import ChannelError

    try:
        return dict(await call)
    except ChannelError as exc:
        raise _mapped(exc) from None


def _not_linked(ctx: CallContext, params: SendParams) -> None:
    runtime = _channels(ctx).runtime
    from ...channels.base import ChannelError
    from ...channels.supervision import AccountState

    try:
        runner = runtime.runner_for(params.channel, params.accountId)
    except ChannelError as exc:
        raise _mapped(exc) from None
    if runner.state in (AccountState.FAILED, AccountState.STOPPED):
        raise RequestError(
            f"{runner.account.key} is not linked ({runner.last_error or runner.state.value});"
            f" see `clawgate channels status`",
            code=NOT_LINKED,
        )


@method("send", params=SendParams, result=SendResult, scope=WRITE, idempotency=Idempotency.REQUIRED)
async def send(ctx: CallContext, params: SendParams) -> dict[str, Any]:
    """Deliver a message on a channel (no agent run); retries return the first outcome."""
    from ...channels.runtime import SendRequest
    from ...channels.webchat import WEBCHAT

    service = _channels(ctx)
    media = [*([params.mediaUrl] if params.mediaUrl else []), *(params.mediaUrls or [])]
    text = params.message or ""
    if not text.strip() and not media:
        raise InvalidRequest("send needs a message or a mediaUrl")
    for source in media:
        _check_media(ctx, source)
    session_key = resolve_key(params.sessionKey) if params.sessionKey else None
    to = params.to
    if params.channel == WEBCHAT:
        session_key = None
        to = resolve_key(params.to)
    _not_linked(ctx, params)
    request = SendRequest(
        to=to,
        text=text,
        media=tuple(media),
        channel=params.channel,
        account_id=params.accountId,
        thread_id=params.threadId,
        reply_to=params.replyTo,
        session_key=session_key,
        run_id=params.idempotencyKey,
    )
    result = await _answer(service.send(request))
    return {"runId": params.idempotencyKey, **result}


def _check_media(ctx: CallContext, source: str) -> None:
    """Allow URLs, and local files only under `<home>/media` (never any file of the host)."""
    if source.startswith(("http://", "https://")):
        return
    from pathlib import Path

    root = (ctx.services.info.home / "media").resolve()
    path = Path(source.removeprefix("file://")).expanduser().resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise InvalidRequest(
            f"mediaUrl must be an http(s) URL or a file under {root}; copy the file there first"
        )


@method("channels.status", params=ChannelsStatusParams, result=ChannelsStatusResult, scope=READ)
def channels_status(ctx: CallContext, params: ChannelsStatusParams) -> dict[str, Any]:
    """Return every channel account: state, connected, last in/out, last error."""
    from ...channels.status_view import openclaw_status

    entries = [
        entry
        for entry in _channels(ctx).status()
        if params.channel is None or entry["channel"] == params.channel
    ]
    return {"ts": ctx.services.clock(), "channels": entries, **openclaw_status(entries)}


@method("channels.logout", params=AccountParams, result=AccountResult, scope=ADMIN)
async def channels_logout(ctx: CallContext, params: AccountParams) -> dict[str, Any]:
    """Stop an account and drop its platform session; it stays off until `channels.login`."""
    return await _answer(_runtime(ctx).logout(params.channel, params.accountId))


@method("channels.login", params=AccountParams, result=AccountResult, scope=ADMIN)
async def channels_login(ctx: CallContext, params: AccountParams) -> dict[str, Any]:
    """Start an account again (after a logout, or once its credential was fixed)."""
    return await _answer(_runtime(ctx).login(params.channel, params.accountId))


@method("channels.pairing.list", params=PairingListParams, result=PairingListResult, scope=ADMIN)
def channels_pairing_list(ctx: CallContext, params: PairingListParams) -> dict[str, Any]:
    """Return the pending DM pairing codes, oldest first, and the accounts that issue them."""
    from ...channels.policy import PAIRING_MAX_PENDING, PAIRING_TTL_MS
    from ...channels.status_view import openclaw_pairing

    def wanted(channel: str, account_id: str) -> bool:
        return params.channel in (None, channel) and params.accountId in (None, account_id)

    runtime = _runtime(ctx)
    pending = [e for e in runtime.pairing_list() if wanted(e["channel"], e["accountId"])]
    accounts = runtime.pairing_accounts()
    accounts = [a for a in accounts if wanted(*a)]
    view = openclaw_pairing(
        accounts, pending, pending_per_account=PAIRING_MAX_PENDING, ttl_ms=PAIRING_TTL_MS
    )
    return {"pending": pending, **view}


def _pending_code(ctx: CallContext, params: PairingParams) -> Any:
    """Return the runtime, after checking the code was issued on `accountId` if one is given."""
    runtime = _runtime(ctx)
    if params.accountId is not None:
        issued = {(e["channel"], e["code"]): e["accountId"] for e in runtime.pairing_list()}
        if issued.get((params.channel, params.pairing_code)) != params.accountId:
            raise InvalidRequest(
                f"no pending pairing code {params.pairing_code} on"
                f" {params.channel}/{params.accountId}; list them with channels.pairing.list",
                details={"code": PAIRING_CODE_NOT_FOUND},
            )
    return runtime


def _with_openclaw_names(code: str, result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "requestId": code, "senderId": result["sender"]}


@method("channels.pairing.approve", params=PairingParams, result=PairingResult, scope=ADMIN)
async def channels_pairing_approve(ctx: CallContext, params: PairingParams) -> dict[str, Any]:
    """Allow the sender holding the code from now on (persisted)."""
    code = params.pairing_code
    result = await _answer(_pending_code(ctx, params).pairing_approve(params.channel, code))
    return {
        **_with_openclaw_names(code, result),
        "notification": "not-requested",
        "commandOwnerBootstrap": "not-requested",
    }


@method("channels.pairing.reject", params=PairingParams, result=PairingResult, scope=ADMIN)
async def channels_pairing_reject(ctx: CallContext, params: PairingParams) -> dict[str, Any]:
    """Drop a pending code without allowing its sender."""
    code = params.pairing_code
    result = await _answer(_pending_code(ctx, params).pairing_reject(params.channel, code))
    return _with_openclaw_names(code, result)


@method("channels.pairing.dismiss", params=PairingParams, result=PairingResult, scope=ADMIN)
async def channels_pairing_dismiss(ctx: CallContext, params: PairingParams) -> dict[str, Any]:
    """OpenClaw's name for `channels.pairing.reject`: drop the code, allow nobody."""
    return await channels_pairing_reject(ctx, params)
