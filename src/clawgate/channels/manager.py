"""Run one channel account as a supervised task: start, watch its progress, rebuild it.

Invariants:
- An account's failure stays in its task: it is logged, shown in `channels.status`, and
  the account restarts with backoff; the gateway and the other accounts never see it.
- `AuthFailed` (and a missing SDK or credential) ends in state `failed` with no retry: a
  bad token is reported once, not hammered. `login` (or a restart of the gateway) tries
  again.
- A running account that reports no `progress()` for its adapter's `stall_after_s` is
  cancelled and rebuilt, exactly as if it had crashed (a wedged long poll, a half-open
  socket).
- `stop` cancels the run and waits for it; an account's task never outlives its runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import (
    AccountConfig,
    AuthFailed,
    ChannelAdapter,
    ChannelError,
    InboundMessage,
    WebhookHandler,
)
from .registry import load_adapter, spec_for
from .supervision import AccountState, Backoff, BackoffPolicy, stalled

__all__ = ["AccountCounters", "AccountRunner", "AccountServices", "AdapterFactory"]

logger = logging.getLogger(__name__)

#: Builds the adapter of a channel built into the gateway (WebChat) from its account and link.
AdapterFactory = Callable[[AccountConfig, "AccountRunner"], ChannelAdapter]


@dataclass(slots=True)
class AccountCounters:
    """What `/metrics` shows of one account."""

    inbound: int = 0
    outbound: int = 0
    errors: int = 0
    reconnects: int = 0


@dataclass(frozen=True, slots=True)
class AccountServices:
    """What the channel layer lends every account runner."""

    deliver: Callable[[InboundMessage], Awaitable[None]]
    load_cursor: Callable[[AccountConfig], Awaitable[str | None]]
    save_cursor: Callable[[AccountConfig, str], Awaitable[None]]
    add_webhook: Callable[[str, WebhookHandler, str | None], str]
    remove_webhook: Callable[[str], None]
    media_root: Path
    clock: Callable[[], int]
    backoff: BackoffPolicy
    # Monotonic seconds, for stall detection (tests may drive it).
    monotonic: Callable[[], float] = time.monotonic
    # (account, inviter, room, direct) -> whether to join (see `policy.decide_invite`).
    may_join: Callable[[AccountConfig, str, str, bool], bool] = lambda *_: False
    # (account, platform message id, reason) -> whether a recorded delivery was marked failed.
    delivery_failed: Callable[[AccountConfig, str, str], Awaitable[bool]] | None = None


class AccountRunner:
    """One account: its adapter, its supervised task, its state and counters.

    A platform account's adapter class comes from `registry.py` (its SDK imported on first
    use); a channel built into the gateway (WebChat) passes its `factory` instead and is
    `builtin`: no credential, no extra, and never "the one configured channel".
    """

    def __init__(
        self,
        account: AccountConfig,
        services: AccountServices,
        factory: AdapterFactory | None = None,
    ) -> None:
        self.account = account
        self.builtin = factory is not None
        self._factory = factory
        self._services = services
        self.state = AccountState.STOPPED
        self.last_error: str | None = None
        self.last_inbound_at: int | None = None
        self.last_outbound_at: int | None = None
        self.counters = AccountCounters()
        self.adapter: ChannelAdapter | None = None
        self._adapter_class: Any = None
        self._task: asyncio.Task[None] | None = None
        self._last_progress = services.monotonic()
        self._backoff = Backoff(services.backoff)
        self._log = logging.LoggerAdapter(logger, {"account": account.key})
        self._connected = asyncio.Event()

    # -- the AccountLink an adapter sees --------------------------------------------

    @property
    def media_dir(self) -> Path:
        """A private folder for this account's downloaded media."""
        path = self._services.media_root / self.account.channel / self.account.account_id
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def connected(self) -> None:
        """The adapter is connected."""
        if self.state is not AccountState.CONNECTED:
            self._log.info("channel %s connected", self.account.key)
        self.state = AccountState.CONNECTED
        self.last_error = None
        self._backoff.reset()
        self._connected.set()
        self.progress()

    def progress(self) -> None:
        """The adapter is alive."""
        self._last_progress = self._services.monotonic()

    def error(self, reason: str) -> None:
        """Count a failure the adapter recovered from and show it."""
        self.counters.errors += 1
        self.last_error = self.scrub(reason)

    async def deliver(self, message: InboundMessage) -> None:
        """Hand an inbound message to the pipeline."""
        self.received(message.received_at)
        await self._services.deliver(message)

    def received(self, at: int) -> None:
        """Count an inbound message (WebChat's `chat.send` counts here, past the pipeline)."""
        self.progress()
        self.counters.inbound += 1
        self.last_inbound_at = at

    def may_join(self, inviter: str, room_id: str, direct: bool) -> bool:
        """Whether the account's access settings let it join a room it was invited to."""
        return self._services.may_join(self.account, inviter, room_id, direct)

    async def delivery_failed(self, message_id: str, reason: str) -> None:
        """Mark a delivery failed after the fact (the platform's report) and show why.

        A report for a message the gateway has no record of (one a person sent from the
        same account elsewhere) is logged, not shown as the account's error.
        """
        report = self._services.delivery_failed
        if report is not None and not await report(self.account, message_id, reason):
            self._log.info("a failure report for an unrecorded message %s", message_id)
            return
        self.send_failed(reason)

    async def load_cursor(self) -> str | None:
        """Return the persisted cursor."""
        return await self._services.load_cursor(self.account)

    async def save_cursor(self, cursor: str) -> None:
        """Persist the cursor."""
        await self._services.save_cursor(self.account, cursor)

    def add_webhook(self, handler: WebhookHandler, *, name: str | None = None) -> str:
        """Serve a webhook for this account; return its path (see `AccountLink`)."""
        return self._services.add_webhook(self.account.channel, handler, name)

    def remove_webhook(self, path: str) -> None:
        """Stop serving a webhook path."""
        self._services.remove_webhook(path)

    # -- outbound bookkeeping -------------------------------------------------------

    def sent(self, count: int) -> None:
        """Count messages delivered to the platform."""
        self.counters.outbound += count
        self.last_outbound_at = self._services.clock()

    def send_failed(self, reason: str) -> None:
        """Count a failed send and show why."""
        self.counters.errors += 1
        self.last_error = self.scrub(reason)

    # -- life -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the account's task is alive (connected, starting or backing off)."""
        return self._task is not None and not self._task.done()

    def start(self, spawn: Callable[..., asyncio.Task[None]]) -> None:
        """Start supervising the account (no-op when disabled or already running)."""
        if self.running:
            return
        if not self.account.enabled:
            self.state = AccountState.STOPPED
            return
        self._backoff.reset()
        self._task = spawn(self._supervise(), name=f"channel-{self.account.key}")

    async def stop(self, state: AccountState = AccountState.STOPPED) -> None:
        """Cancel the account's task, wait for it, and release the adapter."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.state is not AccountState.FAILED or state is not AccountState.STOPPED:
            self.state = state
        await self.close_adapter()

    async def close_adapter(self) -> None:
        """Close the adapter (its HTTP sessions)."""
        adapter, self.adapter = self.adapter, None
        if adapter is not None:
            try:
                await adapter.close()
            except Exception:
                self._log.warning("closing %s failed", self.account.key, exc_info=True)

    def ensure_adapter(self) -> ChannelAdapter:
        """Return the account's adapter, building it on first use (sends need it too).

        Raises:
            ChannelError: the SDK is missing or the account has no credential.
        """
        if self.adapter is None and self._factory is not None:
            self.adapter = self._factory(self.account, self)
        if self.adapter is None:
            if self._adapter_class is None:
                self._adapter_class = load_adapter(
                    self.account.channel, self.account.options.get("mode")
                )
            spec = spec_for(self.account.channel, self.account.options.get("mode"))
            required = spec is None or spec.credential_required
            if required and not self.account.secret:
                raise AuthFailed(
                    f"{self.account.key} has no credential ({self.account.secret_source});"
                    f" set it in [channels.{self.account.channel}] and run"
                    f" `clawgate channels login {self.account.channel}`"
                )
            self.adapter = self._adapter_class(self.account, self)
        return self.adapter

    async def _supervise(self) -> None:
        while True:
            self.state = AccountState.STARTING
            self._connected.clear()
            try:
                adapter = self.ensure_adapter()
                await self._run_watched(adapter)
                raise ChannelError("the connection ended")
            except asyncio.CancelledError:
                raise
            except AuthFailed as exc:
                self._fail(str(exc))
                return
            except ChannelError as exc:
                if self.adapter is None:  # nothing to run: missing SDK or the like
                    self._fail(str(exc))
                    return
                self._restarting(str(exc))
            except Exception as exc:
                self._log.warning("channel %s crashed: %s", self.account.key, type(exc).__name__)
                self._restarting(f"{type(exc).__name__}: {exc}")
            delay = self._backoff.next_delay()
            self.state = AccountState.BACKOFF
            self._log.info("channel %s restarts in %.1f s", self.account.key, delay)
            await asyncio.sleep(delay)
            self.counters.reconnects += 1

    def scrub(self, text: str) -> str:
        """Return `text` with the account's credentials masked (SDK errors may echo them)."""
        for secret in self.account.secrets():
            text = text.replace(secret, "***")
        return text

    def _fail(self, reason: str) -> None:
        reason = self.scrub(reason)
        self.state = AccountState.FAILED
        self.last_error = reason
        self.counters.errors += 1
        self._log.error("channel %s failed: %s", self.account.key, reason)

    def _restarting(self, reason: str) -> None:
        reason = self.scrub(reason)
        self.last_error = reason
        self.counters.errors += 1
        self._log.warning("channel %s stopped receiving: %s", self.account.key, reason)

    async def _run_watched(self, adapter: ChannelAdapter) -> None:
        """Run the adapter; cancel it when its progress signal stalls."""
        stall_after = adapter.capabilities.stall_after_s
        self.progress()
        run = asyncio.ensure_future(adapter.run())
        try:
            while not run.done():
                await asyncio.wait({run}, timeout=min(stall_after / 4, 5.0))
                now = self._services.monotonic()
                if not run.done() and stalled(self._last_progress, now, stall_after):
                    run.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await run
                    raise ChannelError(f"no progress for {stall_after:g} s; rebuilding")
            run.result()
        finally:
            if not run.done():
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the account to connect; return whether it did."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    def status(self) -> dict[str, Any]:
        """Return the account's `channels.status` entry."""
        account = self.account
        entry: dict[str, Any] = {
            "channel": account.channel,
            "accountId": account.account_id,
            "enabled": account.enabled,
            "running": self.running,
            "connected": self.state is AccountState.CONNECTED,
            "state": self.state.value,
            "lastInboundAt": self.last_inbound_at,
            "lastOutboundAt": self.last_outbound_at,
            "lastError": self.last_error,
            "reconnects": self.counters.reconnects,
        }
        mode = account.options.get("mode")
        if mode is not None:
            entry["mode"] = mode
        return entry
