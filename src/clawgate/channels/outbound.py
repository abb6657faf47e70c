"""Deliver text and media to a platform: chunked, rate-limited, retried, and recorded.

Invariants:
- Nothing is dropped silently: every delivery ends recorded in `channel_outbound`, as
  `sent` with the platform's message ids or as `failed` with the reason.
- A platform's 429 is obeyed: the chat (or, when the platform says so, the whole account)
  waits `retry_after` before anything else is sent to it, and the send is retried; rate
  limits do not use up the retry budget for failures.
- A transient failure is retried with backoff (`OutboxPolicy`); a permanent one
  (`PermanentSendError`, refused credentials) is not.
- Chunks go out in order; only the first one replies to the message it answers.
- A streamed reply (`stream`) is recorded once, like any other delivery: with the ids of
  every message it posted, its final text in them. An edit that fails (after its retries)
  ends the editing, and once the reply is complete the text from that message on is sent
  again as new messages: the reply may then show twice in part, never lose a part.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Final, TypeVar

from ..store.channels_repo import OutboundRow, record_outbound
from ..store.group_writer import GroupWriter
from .base import (
    AuthFailed,
    ChannelAdapter,
    EditsText,
    OutboundMedia,
    PermanentSendError,
    RateLimited,
    Target,
)
from .chunking import split_text
from .manager import AccountRunner
from .streaming import Edit, Post, ReplyStreamMachine, StreamAction

__all__ = ["Delivery", "Outbox", "OutboxPolicy", "RateGates", "ReplyStream"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
SENT: Final = "sent"
FAILED: Final = "failed"
# A platform that keeps answering 429 is given this many waits before the send fails.
MAX_RATE_WAITS: Final = 20


@dataclass(frozen=True, slots=True)
class OutboxPolicy:
    """Retries of a failing send: up to `max_attempts`, `initial_s` doubling to `max_s`."""

    max_attempts: int = 5
    initial_s: float = 1.0
    max_s: float = 30.0


@dataclass(slots=True)
class Delivery:
    """How a delivery ended."""

    ok: bool
    message_ids: list[str] = field(default_factory=list)
    attempts: int = 0
    error: str | None = None


def _sender(
    target: Target, part: str | OutboundMedia
) -> Callable[[ChannelAdapter], Awaitable[str]]:
    """Return the call that sends one chunk or file through an adapter."""
    if isinstance(part, str):
        return lambda adapter: adapter.send_text(target, part)
    return lambda adapter: adapter.send_media(target, part)


def _action(target: Target, action: StreamAction) -> Callable[[ChannelAdapter], Awaitable[str]]:
    """Return the call that posts or edits one message of a streamed reply."""
    if isinstance(action, Post):
        return lambda adapter: adapter.send_text(target, action.text)

    async def edit(adapter: ChannelAdapter) -> str:
        if not isinstance(adapter, EditsText):  # checked before streaming; the rest is resent
            raise PermanentSendError(f"{type(adapter).__name__} cannot edit messages")
        await adapter.edit_text(target, action.message_id, action.text)
        return action.message_id

    return edit


class ReplyStream:
    """A reply while the agent writes it: the turn feeds text in, `Outbox.stream` shows it."""

    def __init__(self, machine: ReplyStreamMachine) -> None:
        self.machine = machine
        self._changed = asyncio.Event()

    def update(self, text: str) -> None:
        """Take the reply's whole text so far (called for every delta; never waits)."""
        self.machine.update(text)
        self._changed.set()

    def end(self, text: str) -> None:
        """Take the final text."""
        self.machine.end(text)
        self._changed.set()

    async def changed(self, timeout_s: float | None) -> None:
        """Wait until the text changes (or `timeout_s` passes)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._changed.wait()
        self._changed.clear()

    async def ended(self) -> None:
        """Wait until the final text is in."""
        while not self.machine.ended:
            await self.changed(None)


class RateGates:
    """When each chat and account may be sent to again (pure: times are passed in)."""

    def __init__(self) -> None:
        self._until: dict[tuple[str, ...], float] = {}

    def wait_s(self, keys: Iterable[tuple[str, ...]], now: float) -> float:
        """Return how long to wait before sending under every one of `keys`."""
        return max((self._until.get(key, 0.0) - now for key in keys), default=0.0)

    def block(self, key: tuple[str, ...], until: float) -> None:
        """Send nothing under `key` before `until`."""
        self._until[key] = max(self._until.get(key, 0.0), until)
        if len(self._until) > 10_000:
            self._until = {k: t for k, t in self._until.items() if t > until - 3600}


class Outbox:
    """Send through an account's adapter and record every outcome in state.db."""

    def __init__(
        self,
        writes: GroupWriter,
        clock: Callable[[], int],
        policy: OutboxPolicy = OutboxPolicy(),
        *,
        monotonic: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._writes = writes
        self._clock = clock
        self._policy = policy
        self._monotonic = monotonic or asyncio.get_running_loop().time
        self._sleep = sleep
        self.gates = RateGates()

    async def deliver(
        self,
        runner: AccountRunner,
        target: Target,
        text: str,
        media: tuple[OutboundMedia, ...] = (),
        *,
        session_key: str | None = None,
        run_id: str | None = None,
        answers: Iterable[tuple[str, str, str]] = (),
    ) -> Delivery:
        """Send `text` (chunked) and `media` to `target`; record and return the outcome.

        `answers` are the inbound messages this delivery answers: they are marked done in
        the same transaction that records the outcome.
        """
        delivery = Delivery(ok=True)
        try:
            adapter = runner.ensure_adapter()
            caps = adapter.capabilities
            chunks = split_text(text, caps.max_text) if text else []
            if media and not caps.media:
                raise PermanentSendError(f"{runner.account.channel} cannot send media")
            await self._send_parts(runner, target, [*chunks, *media], delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(runner, target, delivery, exc)
        await self._record(runner, target, delivery, session_key, run_id, answers)
        return delivery

    async def stream(
        self,
        runner: AccountRunner,
        target: Target,
        reply: ReplyStream,
        *,
        session_key: str | None = None,
        run_id: str | None = None,
        answers: Iterable[tuple[str, str, str]] = (),
    ) -> Delivery:
        """Show `reply` while it is written (post, then edit in place); record the outcome.

        Returns once the reply ended and every message shows its final text. A reply that
        ended without text sends nothing and records nothing (`attempts` is 0).
        """
        delivery = Delivery(ok=True)
        try:
            resend_from = await self._stream_edits(runner, target, reply, delivery)
            if resend_from is not None:
                await reply.ended()
                text = reply.machine.rest_from(resend_from)
                chunks = split_text(text, runner.ensure_adapter().capabilities.max_text)
                place = target if resend_from == 0 else replace(target, reply_to=None)
                await self._send_parts(runner, place, list(chunks), delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(runner, target, delivery, exc)
        if delivery.attempts:
            await self._record(runner, target, delivery, session_key, run_id, answers)
        return delivery

    async def _stream_edits(
        self, runner: AccountRunner, target: Target, reply: ReplyStream, delivery: Delivery
    ) -> int | None:
        """Post and edit until the reply is shown whole; return where to resend from if not."""
        machine = reply.machine
        while True:
            for action in machine.next(self._monotonic()):
                place = target if action.index == 0 else replace(target, reply_to=None)
                try:
                    message_id = await self._attempt(
                        runner, place, delivery, _action(place, action)
                    )
                except (asyncio.CancelledError, AuthFailed):
                    raise
                except Exception as exc:
                    logger.info(
                        "streaming to %s chat %s stopped (%s); the rest is sent anew at the end",
                        runner.account.key,
                        target.chat_id,
                        runner.scrub(str(exc) or type(exc).__name__),
                    )
                    return min(action.index, machine.first_stale())
                if isinstance(action, Edit):
                    machine.edited(action.index, action.text, self._monotonic())
                else:
                    delivery.message_ids.append(message_id)
                    machine.posted(action.index, message_id, action.text, self._monotonic())
            if machine.done:
                return None
            wake = machine.wake_at()
            await reply.changed(None if wake is None else max(wake - self._monotonic(), 0.0))

    async def _send_parts(
        self,
        runner: AccountRunner,
        target: Target,
        parts: list[str | OutboundMedia],
        delivery: Delivery,
    ) -> None:
        """Send chunks and files in order; only the first replies to the target's message."""
        place = target
        for part in parts:
            message_id = await self._attempt(runner, place, delivery, _sender(place, part))
            delivery.message_ids.append(message_id)
            place = replace(target, reply_to=None)

    def _failed(
        self, runner: AccountRunner, target: Target, delivery: Delivery, exc: Exception
    ) -> None:
        delivery.ok = False
        delivery.error = runner.scrub(str(exc) or type(exc).__name__)
        runner.send_failed(delivery.error)
        logger.warning(
            "delivery to %s chat %s failed after %d attempt(s): %s",
            runner.account.key,
            target.chat_id,
            delivery.attempts,
            delivery.error,
        )

    async def _attempt(
        self,
        runner: AccountRunner,
        target: Target,
        delivery: Delivery,
        send: Callable[[ChannelAdapter], Awaitable[str]],
    ) -> str:
        account = runner.account
        chat_key = (account.channel, account.account_id, target.chat_id)
        account_key = (account.channel, account.account_id)
        failures = 0
        rate_waits = 0
        while True:
            wait = self.gates.wait_s((chat_key, account_key), self._monotonic())
            if wait > 0:
                await self._sleep(wait)
            delivery.attempts += 1
            try:
                return await send(runner.ensure_adapter())
            except RateLimited as exc:
                rate_waits += 1
                if rate_waits > MAX_RATE_WAITS:
                    raise
                key = account_key if exc.account_wide else chat_key
                self.gates.block(key, self._monotonic() + exc.retry_after_s)
                logger.info(
                    "%s asked to wait %.1f s before sending to chat %s",
                    account.key,
                    exc.retry_after_s,
                    target.chat_id,
                )
            except (PermanentSendError, AuthFailed):
                raise
            except Exception as exc:
                failures += 1
                if failures >= self._policy.max_attempts:
                    raise
                delay = min(self._policy.initial_s * 2 ** (failures - 1), self._policy.max_s)
                logger.info(
                    "send to %s chat %s failed (%s); retrying in %.1f s",
                    account.key,
                    target.chat_id,
                    runner.scrub(str(exc) or type(exc).__name__),
                    delay,
                )
                await self._sleep(delay)

    async def _record(
        self,
        runner: AccountRunner,
        target: Target,
        delivery: Delivery,
        session_key: str | None,
        run_id: str | None,
        answers: Iterable[tuple[str, str, str]],
    ) -> None:
        if delivery.message_ids:
            runner.sent(len(delivery.message_ids))
        account = runner.account
        row = OutboundRow(
            channel=account.channel,
            account=account.account_id,
            chat_id=target.chat_id,
            thread_id=target.thread_id,
            session_key=session_key,
            run_id=run_id,
            state=SENT if delivery.ok else FAILED,
            message_ids=json.dumps(delivery.message_ids),
            attempts=delivery.attempts,
            error=delivery.error,
            created_at=self._clock(),
        )
        finished = list(answers)
        await self._writes.write(lambda conn: record_outbound(conn, row, finished))
