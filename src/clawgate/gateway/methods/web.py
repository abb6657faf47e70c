"""`web.login.start` / `web.login.wait`: link a channel account by QR code (OpenClaw's names).

For channels whose account is a linked device (personal WhatsApp): `start` (re)starts the
account when it is not linked and answers with the QR code to scan, as a PNG data URL
(`qrDataUrl`, what OpenClaw's pages show) and as text (`qr`, a clawgate extension the CLI
draws in the terminal); `wait` answers once the device is linked or the code changed
(with `currentQrDataUrl`, the code you show; without it, `wait` waits for the link only).
A linked account answers
`connected: true` at once. Admin scope: a QR code hands over the number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final

from pydantic import Field

from ...protocol.errors import InvalidRequest, Unavailable
from ...protocol.scopes import ADMIN
from ..context import CallContext
from ..registry import method
from ._common import OpenResult, Params
from .channels import _answer, _mapped, _runtime

if TYPE_CHECKING:
    from ...channels.manager import AccountRunner
    from ...channels.qr_login import QrLogin

__all__ = ["web_login_start", "web_login_wait"]

#: The channel `web.login.*` means when none is named (the only one with QR login today).
DEFAULT_CHANNEL: Final = "whatsapp"
#: How long to wait for a code or a link when `timeoutMs` is not given.
DEFAULT_TIMEOUT_MS: Final = 30_000
MAX_TIMEOUT_MS: Final = 300_000
_SCAN_HINT: Final = "Scan this QR code in WhatsApp: Settings → Linked devices → Link a device"

Name = Annotated[str, Field(min_length=1, max_length=64)]
Timeout = Annotated[int, Field(ge=0, le=MAX_TIMEOUT_MS)]


class WebLoginStartParams(Params):
    """Params of `web.login.start`."""

    channel: Name | None = None
    accountId: Name | None = None
    force: bool = False
    timeoutMs: Timeout | None = None
    verbose: bool | None = None


class WebLoginWaitParams(Params):
    """Params of `web.login.wait`."""

    channel: Name | None = None
    accountId: Name | None = None
    sessionKey: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    timeoutMs: Timeout | None = None
    currentQrDataUrl: Annotated[str, Field(max_length=16384)] | None = None


class WebLoginResult(OpenResult):
    """Result of `web.login.start` / `web.login.wait`."""

    connected: bool
    message: str
    qrDataUrl: str | None = None
    qr: str | None = None


def _runner(ctx: CallContext, channel: str, account_id: str | None) -> AccountRunner:
    from ...channels.base import ChannelError

    try:
        return _runtime(ctx).runner_for(channel, account_id)
    except ChannelError as exc:
        raise _mapped(exc) from None


def _qr_login(runner: AccountRunner) -> QrLogin | None:
    from ...channels.qr_login import QrLogin

    login = getattr(runner.adapter, "qr_login", None)
    return login if isinstance(login, QrLogin) else None


def _data_url(code: str) -> str:
    """Return the QR code as a PNG data URL (segno comes with the channel's extra)."""
    import segno

    return str(segno.make_qr(code, error="l").png_data_uri(scale=6, border=2))


def _answer_code(code: str | None, login: QrLogin, channel: str) -> dict[str, Any]:
    if login.linked:
        return {"connected": True, "message": f"{channel} is linked"}
    if code is None:
        raise Unavailable(f"{channel} offered no QR code in time; try again in a few seconds")
    return {"connected": False, "message": _SCAN_HINT, "qrDataUrl": _data_url(code), "qr": code}


def _login_of(runner: AccountRunner) -> QrLogin | None:
    """Return the QR login of the account's adapter (built now if the account has none)."""
    from ...channels.base import ChannelError

    try:
        runner.ensure_adapter()
    except ChannelError as exc:
        raise _mapped(exc) from None
    return _qr_login(runner)


@method("web.login.start", params=WebLoginStartParams, result=WebLoginResult, scope=ADMIN)
async def web_login_start(ctx: CallContext, params: WebLoginStartParams) -> dict[str, Any]:
    """Return the QR code to link the account, (re)starting it if it is not linked."""
    from ...channels.supervision import AccountState

    runtime = _runtime(ctx)
    channel = params.channel or DEFAULT_CHANNEL
    runner = _runner(ctx, channel, params.accountId)
    timeout_s = (params.timeoutMs or DEFAULT_TIMEOUT_MS) / 1000
    if params.force or runner.state in (AccountState.FAILED, AccountState.STOPPED):
        await _answer(runtime.login(channel, params.accountId))
    login = _login_of(runner)
    if login is None:
        raise InvalidRequest(f"web login is not supported by channel {channel}")
    if login.linked and not params.force:
        return {"connected": True, "message": f"{channel} is linked"}
    return _answer_code(await login.current(timeout_s), login, channel)


@method("web.login.wait", params=WebLoginWaitParams, result=WebLoginResult, scope=ADMIN)
async def web_login_wait(ctx: CallContext, params: WebLoginWaitParams) -> dict[str, Any]:
    """Answer once the account is linked, or once its QR code changed."""
    channel = params.channel or DEFAULT_CHANNEL
    runner = _runner(ctx, channel, params.accountId)
    login = _qr_login(runner)
    if login is None:
        raise InvalidRequest(f"{channel} is not waiting for a QR code; call web.login.start first")
    timeout_s = (DEFAULT_TIMEOUT_MS if params.timeoutMs is None else params.timeoutMs) / 1000
    if params.currentQrDataUrl is None:
        linked = await login.wait_linked(timeout_s)
        message = (
            f"{channel} is linked" if linked else "still waiting for the QR code to be scanned"
        )
        return {"connected": linked, "message": message}
    # Wait past the code the caller shows; if a newer one exists already, answer with it.
    shown = login.code
    if shown is not None and _data_url(shown) != params.currentQrDataUrl:
        shown = None
    code = await login.current(timeout_s, after=shown)
    if login.linked:
        return {"connected": True, "message": f"{channel} is linked"}
    if code is None:
        return {"connected": False, "message": "still waiting for the QR code to be scanned"}
    return _answer_code(code, login, channel)
