"""WebChat as a channel: the browser page, one adapter of the same interface as Telegram's.

What an adapter means for a channel with no external server (the decision, in one place):

- **Account.** One implicit account, `webchat/default`: always enabled, no credential, no
  config table. It is built into the gateway (`builtin`), so it never counts as "the single
  configured channel" that `send` without `channel` picks, and it cannot be logged out.
- **Lifecycle.** The gateway's own HTTP port is WebChat's server, and it is up before the
  channel layer starts, so `run()` reports `connected` at once and then waits until it is
  cancelled. Nothing can wedge, so the stall timer is off (`stall_after_s` infinite); the
  account shows in `channels.status`, `/readyz` and `/metrics` like any other.
- **Inbound.** The page's `chat.send` is already an authenticated operator's request (the
  WebSocket handshake and scopes are its access policy), and its reply streams back as
  `chat` events; it goes to the agent service directly, with the session key the page
  names, exactly as before. It does not pass through the channel layer's inbound pipeline
  (dedupe, DM policy, pairing, debounce): those guard against strangers on a platform.
- **Outbound.** A chat of WebChat is a gateway session, so a peer (`Target.chat_id`) is a
  session key. `send_text` appends the text to that session's transcript as an assistant
  message and shows it on open pages (a `chat` final); an unknown session is a permanent
  failure, never a stray new session. Text needs no chunking, and the page has no media
  and no typing indicator of its own (it shows runs live already).
"""

from __future__ import annotations

import asyncio
import math
from typing import Final, Protocol

from .base import (
    AccountConfig,
    AccountLink,
    Capabilities,
    OutboundMedia,
    PermanentSendError,
    Target,
)

__all__ = ["WEBCHAT", "WebChatAdapter", "WebChatSessions", "webchat_account"]

WEBCHAT: Final = "webchat"
#: The longest text one WebChat message holds: a transcript entry, never split.
MAX_TEXT: Final = 1_000_000


def webchat_account() -> AccountConfig:
    """Return WebChat's one implicit account (no credential, no strangers to let in)."""
    return AccountConfig(
        channel=WEBCHAT, account_id="default", dm_policy="disabled", group_policy="disabled"
    )


class WebChatSessions(Protocol):
    """The gateway's sessions, as WebChat's outbound needs them (implemented in `gateway/`)."""

    async def post(self, session_key: str, text: str, *, label: str, run_id: str | None) -> str:
        """Append an assistant message to a session and show it on open pages; return its id.

        Raises:
            KeyError: there is no such session.
        """


class WebChatAdapter:
    """The `webchat` account: served on the gateway's port, delivering into sessions."""

    capabilities = Capabilities(
        dm=True,
        groups=False,
        threads=False,
        media=False,
        typing=False,
        max_text=MAX_TEXT,
        stall_after_s=math.inf,
    )

    def __init__(
        self, account: AccountConfig, link: AccountLink, sessions: WebChatSessions
    ) -> None:
        self._account = account
        self._link = link
        self._sessions = sessions

    async def run(self) -> None:
        """Say connected (the gateway's HTTP port is already serving) and wait until cancelled."""
        self._link.connected()
        await asyncio.Event().wait()

    async def send_text(self, target: Target, text: str) -> str:
        """Append `text` to session `target.chat_id`; return the transcript message id.

        Raises:
            PermanentSendError: there is no such session.
        """
        try:
            return await self._sessions.post(
                target.chat_id, text, label=target.label or "send", run_id=target.run_id
            )
        except KeyError:
            raise PermanentSendError(
                f"no WebChat session {target.chat_id}; create it first or deliver to main"
            ) from None

    async def send_media(self, target: Target, media: OutboundMedia) -> str:
        """Refuse: the page shows text only (`capabilities.media` is off)."""
        raise PermanentSendError("webchat takes text only; send the message without media")

    async def typing(self, target: Target) -> None:
        """Do nothing: open pages show a run's progress themselves."""

    async def logout(self) -> None:
        """Do nothing: WebChat holds no platform session."""

    async def close(self) -> None:
        """Do nothing: WebChat holds no resources of its own."""
