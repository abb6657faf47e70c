"""The channel layer of one gateway: every account, supervised, and what they share.

`ChannelRuntime` holds the channels built into the gateway (WebChat, `webchat.py`) and
every configured account. It loads the persisted state (pairing codes, approved senders),
starts one supervised `AccountRunner` per enabled account, runs inbound messages through
the `InboundPipeline`, sends through the `Outbox`, and answers the `send`, `channels.*` and
pairing operations. It knows the agent only as a `TurnRunner`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..store import StateStore
from ..store.channels_repo import (
    approve_sender,
    delete_pairing,
    forget_inbound_before,
    load_approved,
    load_open_inbound,
    load_pairing,
    load_state,
    mark_outbound_failed,
    save_state,
)
from ..store.group_writer import GroupWriter
from .base import AccountConfig, ChannelError, OutboundMedia, Target, WebhookHandler
from .manager import AccountRunner, AccountServices, AdapterFactory
from .outbound import Outbox, OutboxPolicy
from .supervision import AccountState, BackoffPolicy

if TYPE_CHECKING:  # loaded by `start` only when a platform is configured (see there)
    from .pipeline import InboundPipeline, TurnRunner
    from .policy import PairingCode

__all__ = [
    "BuiltInChannel",
    "ChannelRuntime",
    "DeliveryFailed",
    "MediaUnsupported",
    "PairingCodeNotFound",
    "SendRequest",
    "UnknownChannel",
]

logger = logging.getLogger(__name__)

#: Dedupe records of answered messages are kept this long (platforms redeliver within a day).
DEDUPE_RETENTION_MS: Final = 7 * 86_400_000
CURSOR: Final = "cursor"
# A named webhook path is one URL segment (the route matches exactly one).
_WEBHOOK_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
LOGGED_OUT: Final = "logged_out"


class UnknownChannel(ChannelError):
    """No configured account matches the channel (and account) asked for."""


class BuiltInChannel(ChannelError):
    """The account is built into the gateway (WebChat): it has no login to drop or redo."""


class MediaUnsupported(ChannelError):
    """Media was asked of a channel that sends text only."""


class PairingCodeNotFound(ChannelError):
    """No pending pairing code matches."""


class DeliveryFailed(ChannelError):
    """A send was tried and recorded as failed."""


@dataclass(frozen=True, slots=True)
class SendRequest:
    """An outbound message asked for with `send` (spec §10.7)."""

    to: str
    text: str = ""
    media: tuple[str, ...] = ()
    channel: str | None = None
    account_id: str | None = None
    thread_id: str | None = None
    reply_to: str | None = None
    session_key: str | None = None
    run_id: str | None = None
    # What produced it ("send", "heartbeat", "cron: <job>"), for transcripts (WebChat's).
    label: str = "send"


def _media_kind(source: str) -> Any:
    lower = source.lower().split("?")[0]
    return "photo" if lower.endswith((".jpg", ".jpeg", ".png", ".gif", ".webp")) else "document"


class ChannelRuntime:
    """Every channel account of a gateway and the pipeline between them and the agent."""

    def __init__(
        self,
        accounts: Sequence[AccountConfig] = (),
        *,
        store: StateStore,
        turns: TurnRunner,
        home: Path,
        clock: Callable[[], int],
        backoff: BackoffPolicy | None = None,
        outbox: OutboxPolicy | None = None,
        agent_name: str = "This assistant",
        builtin: Sequence[tuple[AccountConfig, AdapterFactory]] = (),
    ) -> None:
        """Build the runners: the built-in channels' first (as status lists them), then
        every configured account; nothing starts before `start`."""
        self._store = store
        self._clock = clock
        self._home = home
        self._backoff = backoff or BackoffPolicy()
        self._outbox_policy = outbox or OutboxPolicy()
        self._turns = turns
        self._agent_name = agent_name
        self.webhooks: dict[str, WebhookHandler] = {}
        self._spawn: Callable[..., asyncio.Task[None]] | None = None
        self.pipeline: InboundPipeline | None = None
        self.outbox: Outbox | None = None
        services = AccountServices(
            deliver=self._deliver,
            load_cursor=self._load_cursor,
            save_cursor=self._save_cursor,
            add_webhook=self._add_webhook,
            remove_webhook=self._remove_webhook,
            media_root=self._home / "media",
            clock=self._clock,
            backoff=self._backoff,
            may_join=self._may_join,
            delivery_failed=self._delivery_failed,
        )
        every = [*builtin, *((account, None) for account in accounts)]
        self.runners: dict[tuple[str, str], AccountRunner] = {
            (account.channel, account.account_id): AccountRunner(account, services, factory)
            for account, factory in every
        }

    # -- life -----------------------------------------------------------------------

    @property
    def has_platforms(self) -> bool:
        """Whether a messaging platform (Telegram, ...) is configured, not just WebChat."""
        return any(not runner.builtin for runner in self.runners.values())

    async def start(self, spawn: Callable[..., asyncio.Task[None]]) -> None:
        """Load channel state, start every enabled account, re-run unfinished turns.

        With built-in channels only (WebChat, whose inbound skips the pipeline) there is
        nothing to dedupe, admit or pair: the inbound pipeline is neither built nor
        imported, which keeps a gateway without platforms as small as before.
        """
        self._spawn = spawn
        writes = GroupWriter(self._store)
        self.outbox = Outbox(writes, self._clock, self._outbox_policy)
        open_records = await self._start_pipeline(writes) if self.has_platforms else []
        logged_out = [await self._load(r.account, LOGGED_OUT) for r in self.runners.values()]
        # From the first account started to the unfinished turns queued, nothing awaits: no
        # new message can take its session's turn before the older one a stop interrupted.
        for runner, out in zip(self.runners.values(), logged_out, strict=True):
            account = runner.account
            if out:
                runner.last_error = (
                    f"logged out; run `clawgate channels login {account.channel}"
                    f" --account {account.account_id}`"
                )
                continue
            runner.start(spawn)
        recovered = self.pipeline.recover(open_records) if self.pipeline is not None else 0
        if recovered:
            logger.info("re-running %d channel turn(s) a stop interrupted", recovered)

    async def _start_pipeline(self, writes: GroupWriter) -> list[str]:
        """Load the pairing state and build the inbound pipeline; return unfinished turns."""
        from .pipeline import InboundPipeline, code_of
        from .policy import PairingBook

        now = self._clock()
        store = self._store
        await store.write(lambda conn: forget_inbound_before(conn, now - DEDUPE_RETENTION_MS))
        rows = await store.read(load_pairing)
        approved_rows = await store.read(load_approved)
        open_records = await store.read(load_open_inbound)
        book = PairingBook(code_of(row) for row in rows)
        expired = book.expired(now)
        if expired:
            doomed = [(c.channel, c.code) for c in expired]
            await store.write(lambda conn: delete_pairing(conn, doomed))
            book.remove(expired)
        approved: dict[tuple[str, str], set[str]] = {}
        for channel, account_id, sender in approved_rows:
            approved.setdefault((channel, account_id), set()).add(sender)
        assert self.outbox is not None
        self.pipeline = InboundPipeline(
            writes=writes,
            turns=self._turns,
            outbox=self.outbox,
            runners=self.runners,
            pairing=book,
            approved=approved,
            clock=self._clock,
            retention_ms=DEDUPE_RETENTION_MS,
            agent_name=self._agent_name,
        )
        return open_records

    async def stop(self) -> None:
        """Stop every account and cancel running turns (they run again at the next start)."""
        await asyncio.gather(
            *(runner.stop() for runner in self.runners.values()), return_exceptions=True
        )
        if self.pipeline is not None:
            await self.pipeline.stop()

    # -- what the runners use -------------------------------------------------------

    async def _deliver(self, message: Any) -> None:
        assert self.pipeline is not None
        await self.pipeline.handle(message)

    def _may_join(self, account: AccountConfig, inviter: str, room_id: str, direct: bool) -> bool:
        from .policy import Verdict, decide_invite

        assert self.pipeline is not None
        approved = self.pipeline.approved.get((account.channel, account.account_id), set())
        decision = decide_invite(account, inviter, room_id, direct, approved)
        logger.info(
            "%s %s the invite of %s to %s: %s",
            account.key,
            "accepts" if decision.verdict is Verdict.ADMIT else "refuses",
            inviter,
            room_id,
            decision.reason,
        )
        return decision.verdict is Verdict.ADMIT

    async def _load(self, account: AccountConfig, key: str) -> str | None:
        channel, account_id = account.channel, account.account_id
        return await self._store.read(lambda conn: load_state(conn, channel, account_id, key))

    async def _load_cursor(self, account: AccountConfig) -> str | None:
        return await self._load(account, CURSOR)

    async def _save_cursor(self, account: AccountConfig, cursor: str) -> None:
        now = self._clock()
        await self._store.write(
            lambda conn: save_state(conn, account.channel, account.account_id, CURSOR, cursor, now)
        )

    async def _delivery_failed(self, account: AccountConfig, message_id: str, reason: str) -> bool:
        channel, account_id = account.channel, account.account_id
        return await self._store.write(
            lambda conn: mark_outbound_failed(conn, channel, account_id, message_id, reason)
        )

    def _add_webhook(self, channel: str, handler: WebhookHandler, name: str | None) -> str:
        if name is not None and not _WEBHOOK_NAME.fullmatch(name):
            raise ChannelError(
                f"webhook path {name!r} is not one segment of letters, digits, '-' or '_'"
            )
        path = f"{channel}/{name if name is not None else secrets.token_urlsafe(24)}"
        if path in self.webhooks:
            raise ChannelError(f"the webhook path /channels/{path} is already served; name another")
        self.webhooks[path] = handler
        return path

    def _remove_webhook(self, path: str) -> None:
        self.webhooks.pop(path, None)

    # -- status -----------------------------------------------------------------------

    def channel_names(self) -> list[str]:
        """Return every channel with an account here, built-in ones included."""
        return sorted({channel for (channel, _) in self.runners})

    def status(self) -> list[dict[str, Any]]:
        """Return every account's status entry, in config order."""
        return [runner.status() for runner in self.runners.values()]

    def received(self, channel: str, at: int) -> None:
        """Count an inbound message a channel's account took in without the pipeline.

        That is WebChat's `chat.send`, which reaches the agent service directly.
        """
        self.runner_for(channel, None).received(at)

    def not_connected(self) -> list[str]:
        """Return the enabled accounts that are not connected (for `/readyz`)."""
        return [
            runner.account.key
            for runner in self.runners.values()
            if runner.account.enabled and runner.state is not AccountState.CONNECTED
        ]

    # -- send ---------------------------------------------------------------------------

    def runner_for(self, channel: str | None, account_id: str | None) -> AccountRunner:
        """Return the account `send` means.

        Raises:
            UnknownChannel: none matches, or `channel` is needed to choose.
        """
        # Built-in channels are always there, so they are never the one configured channel.
        names = sorted({c for (c, _), r in self.runners.items() if not r.builtin})
        if channel is None:
            if not names:
                builtin = ", ".join(f'"{c}"' for c in self.channel_names())
                raise UnknownChannel(
                    "no messaging channel is configured; add one under [channels] in"
                    f" config.toml (or send with channel {builtin})"
                )
            if len(names) != 1:
                raise UnknownChannel(f"several channels are configured; name one of: {names}")
            channel = names[0]
        accounts = [r for (c, _), r in self.runners.items() if c == channel]
        if not accounts:
            known = ", ".join(names) or "none"
            raise UnknownChannel(f"channel {channel!r} is not configured (configured: {known})")
        if account_id is None:
            default = [r for r in accounts if r.account.account_id == "default"]
            return default[0] if default else accounts[0]
        for runner in accounts:
            if runner.account.account_id == account_id:
                return runner
        raise UnknownChannel(f"{channel} has no account {account_id!r}")

    async def send(self, request: SendRequest) -> dict[str, Any]:
        """Deliver an outbound message; return `{messageId, channel, chatId}`.

        Raises:
            UnknownChannel: see `runner_for`.
            MediaUnsupported: media for a channel that cannot send any.
            DeliveryFailed: the platform did not take it (recorded as failed).
        """
        assert self.outbox is not None
        runner = self.runner_for(request.channel, request.account_id)
        if request.media and not runner.ensure_adapter().capabilities.media:
            raise MediaUnsupported(
                f"{runner.account.channel} takes text only; send the message without media"
            )
        target = Target(
            request.to,
            request.thread_id,
            request.reply_to,
            label=request.label,
            run_id=request.run_id,
        )
        media = tuple(OutboundMedia(source, kind=_media_kind(source)) for source in request.media)
        delivery = await self.outbox.deliver(
            runner,
            target,
            request.text,
            media,
            session_key=request.session_key,
            run_id=request.run_id,
        )
        if not delivery.ok:
            raise DeliveryFailed(f"{runner.account.key} did not take the message: {delivery.error}")
        return {
            "messageId": delivery.message_ids[0] if delivery.message_ids else "",
            "channel": runner.account.channel,
            "chatId": request.to,
        }

    # -- login / logout ---------------------------------------------------------------

    async def logout(self, channel: str, account_id: str | None) -> dict[str, Any]:
        """Stop an account, drop its platform session state, and keep it stopped.

        Raises:
            UnknownChannel: see `runner_for`.
            BuiltInChannel: the account is WebChat's (always on).
        """
        runner = self._configured(channel, account_id)
        account = runner.account
        adapter = runner.adapter
        await runner.stop()
        if adapter is None:
            try:
                adapter = runner.ensure_adapter()
            except ChannelError:
                adapter = None
        if adapter is not None:
            try:
                await adapter.logout()
            except Exception as exc:
                logger.warning("%s logout: %s", account.key, runner.scrub(str(exc)))
            await runner.close_adapter()
        now = self._clock()

        def forget(conn: Any) -> None:
            save_state(conn, account.channel, account.account_id, LOGGED_OUT, "1", now)
            save_state(conn, account.channel, account.account_id, CURSOR, None, now)

        await self._store.write(forget)
        runner.last_error = "logged out"
        return {"channel": account.channel, "accountId": account.account_id, "loggedOut": True}

    async def login(self, channel: str, account_id: str | None) -> dict[str, Any]:
        """Start an account again (after logout or a refused credential).

        Raises:
            UnknownChannel: see `runner_for`.
            BuiltInChannel: the account is WebChat's (always on).
        """
        assert self._spawn is not None
        runner = self._configured(channel, account_id)
        account = runner.account
        now = self._clock()
        await self._store.write(
            lambda conn: save_state(
                conn, account.channel, account.account_id, LOGGED_OUT, None, now
            )
        )
        await runner.stop()
        runner.last_error = None
        runner.start(self._spawn)
        return {"channel": account.channel, "accountId": account.account_id, **runner.status()}

    def _configured(self, channel: str, account_id: str | None) -> AccountRunner:
        runner = self.runner_for(channel, account_id)
        if runner.builtin:
            raise BuiltInChannel(
                f"{channel} is built into the gateway and always on; there is no login to change"
            )
        return runner

    # -- pairing ----------------------------------------------------------------------

    def pairing_accounts(self) -> list[tuple[str, str]]:
        """Return (channel, account id) of the enabled accounts under `dm_policy = "pairing"`."""
        return [
            key
            for key, runner in self.runners.items()
            if runner.account.enabled and runner.account.dm_policy == "pairing"
        ]

    def pairing_list(self) -> list[dict[str, Any]]:
        """Return the pending pairing codes, oldest first."""
        if self.pipeline is None:  # no platform configured: nobody to pair
            return []
        return [
            {
                "channel": c.channel,
                "accountId": c.account_id,
                "sender": c.sender_id,
                "senderName": c.sender_name,
                "code": c.code,
                "createdAt": c.created_at,
                "expiresAt": c.expires_at,
            }
            for c in self.pipeline.pairing.pending(self._clock())
        ]

    async def pairing_approve(self, channel: str, code: str) -> dict[str, Any]:
        """Allow the sender who holds `code` from now on.

        Raises:
            UnknownChannel: `channel` is not configured.
            PairingCodeNotFound: no pending code `code` on `channel`.
        """
        found = self._find(channel, code)
        assert self.pipeline is not None
        book = self.pipeline.pairing
        now = self._clock()
        held = book.for_sender(found.channel, found.account_id, found.sender_id)
        doomed = [(c.channel, c.code) for c in held]
        await self._store.write(
            lambda conn: approve_sender(
                conn, found.channel, found.account_id, found.sender_id, now, doomed
            )
        )
        book.remove(held)
        key = (found.channel, found.account_id)
        self.pipeline.approved.setdefault(key, set()).add(found.sender_id)
        logger.info("%s/%s: sender %s approved", *key, found.sender_id)
        return {
            "channel": found.channel,
            "accountId": found.account_id,
            "sender": found.sender_id,
            "approved": True,
        }

    async def pairing_reject(self, channel: str, code: str) -> dict[str, Any]:
        """Drop a pending code without allowing its sender.

        Raises:
            UnknownChannel: `channel` is not configured.
            PairingCodeNotFound: no pending code `code` on `channel`.
        """
        found = self._find(channel, code)
        assert self.pipeline is not None
        await self._store.write(lambda conn: delete_pairing(conn, [(found.channel, found.code)]))
        self.pipeline.pairing.remove([found])
        return {
            "channel": found.channel,
            "accountId": found.account_id,
            "sender": found.sender_id,
            "approved": False,
        }

    def _find(self, channel: str, code: str) -> PairingCode:
        self.runner_for(channel, None)  # a channel that is not configured is told so
        pipeline = self.pipeline
        found = pipeline.pairing.find(channel, code, self._clock()) if pipeline else None
        if found is None:
            raise PairingCodeNotFound(
                f"no pending {channel} pairing code {code.strip().upper()!r};"
                " see `clawgate pairing list` (codes expire after 1 hour)"
            )
        return found

    # -- metrics ----------------------------------------------------------------------

    def counters(self) -> list[tuple[str, str, str, int, int, int, int]]:
        """Return (channel, account, state, inbound, outbound, errors, reconnects) rows."""
        return [
            (
                r.account.channel,
                r.account.account_id,
                r.state.value,
                r.counters.inbound,
                r.counters.outbound,
                r.counters.errors,
                r.counters.reconnects,
            )
            for r in self.runners.values()
        ]
