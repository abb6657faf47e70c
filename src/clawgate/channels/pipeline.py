"""From an inbound message to the agent's reply delivered back (DESIGN "Channels").

Order of checks for each message: dedupe (persisted id) -> access policy (dm/group policy,
allow lists, pairing code) -> mention gate -> debounce -> session -> run -> deliver.

Invariants:
- Persist before acknowledging: `handle` returns (and the adapter may acknowledge the
  message to its platform) only once the message's id is committed in `channel_inbound`,
  together with its normalized record when it goes on to the agent and with the pairing
  code when one was issued. A redelivered message finds its id and is dropped, so it is
  never answered twice.
- A message admitted to the agent stays `open` until its reply was delivered or recorded
  as failed; at start, open messages are run again (`recover`), so a crash loses nothing.
- A refusal never reaches the agent and is logged once per sender per hour, at info
  level, without the message text.
- Turns of one session run one at a time in arrival order (the agent service serialises
  them); turns of different sessions run concurrently.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final, Protocol

from ..store.channels_repo import (
    PairingRow,
    claim_inbound,
    finish_inbound,
    forget_inbound_before,
)
from ..store.group_writer import GroupWriter
from .base import ChatKind, ChatRef, EditsText, InboundMessage, Media, Reacts, Sender, Target
from .manager import AccountRunner
from .outbound import Delivery, Outbox, ReplyStream
from .policy import PairingBook, PairingCode, RefusalLog, Verdict, decide_access
from .routing import reply_target, session_key, wrap_untrusted
from .streaming import ReplyStreamMachine

__all__ = ["InboundPipeline", "TurnOutcome", "TurnRunner", "message_from_json"]

logger = logging.getLogger(__name__)

# The typing indicator lasts about 5 s on most platforms; renew it a little sooner.
TYPING_EVERY_S: Final = 4.0
# How often a running gateway forgets the dedupe records past their retention (start does too).
FORGET_EVERY_MS: Final = 3_600_000


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """How one agent turn ended: its final text, or why it failed."""

    ok: bool
    text: str
    error: str | None = None


class TurnRunner(Protocol):
    """The agent side, as the channel layer needs it (the gateway implements it)."""

    async def run_turn(
        self,
        session_key: str,
        text: str,
        run_id: str,
        on_text: Callable[[str], None] | None = None,
    ) -> TurnOutcome:
        """Append `text` to the session as the user, run the agent, return its answer.

        `on_text`, when given, is called (without awaiting) with the answer's whole text so
        far each time it grows.
        """

    async def note(self, session_key: str, text: str, label: str) -> None:
        """Append a note to a session's transcript without running the agent."""


def message_to_json(message: InboundMessage) -> str:
    """Return the JSON record of a message (kept while its turn is open)."""
    return json.dumps(asdict(message))


def message_from_json(text: str) -> InboundMessage:
    """Rebuild a message from its JSON record."""
    data: dict[str, Any] = json.loads(text)
    data["sender"] = Sender(**data["sender"])
    chat = data["chat"]
    data["chat"] = ChatRef(chat["id"], ChatKind(chat["kind"]), chat.get("title", ""))
    data["media"] = tuple(Media(**m) for m in data.get("media", ()))
    return InboundMessage(**data)


_CODE_FIELDS: Final = (
    "channel",
    "code",
    "account_id",
    "sender_id",
    "sender_name",
    "chat_id",
    "created_at",
    "expires_at",
)


def _pairing_row(code: PairingCode) -> PairingRow:
    """Return the stored row of a pairing code (the row names the account `account`)."""
    return PairingRow(*(getattr(code, name) for name in _CODE_FIELDS))


def code_of(row: PairingRow) -> PairingCode:
    """Return the pairing code a stored row holds."""
    values = dict(zip(_CODE_FIELDS, (getattr(row, f) for f in _ROW_FIELDS), strict=True))
    return PairingCode(**values)


_ROW_FIELDS: Final = (
    "channel",
    "code",
    "account",
    "sender_id",
    "sender_name",
    "chat_id",
    "created_at",
    "expires_at",
)


def pairing_reply(code: PairingCode, agent_name: str) -> str:
    """Return the short message an unknown sender gets."""
    return (
        f"{agent_name} does not know you yet. Pairing code: {code.code}\n"
        f"Ask its owner to run: clawgate pairing approve {code.channel} {code.code}\n"
        "(valid for 1 hour)"
    )


@dataclass(slots=True)
class _Pending:
    messages: list[InboundMessage]
    timer: asyncio.TimerHandle | None = None


def _key(message: InboundMessage) -> tuple[str, str, str]:
    return (message.channel, message.account_id, message.message_id)


class InboundPipeline:
    """Check, record and route inbound messages; run turns and deliver their replies."""

    def __init__(
        self,
        *,
        writes: GroupWriter,
        turns: TurnRunner,
        outbox: Outbox,
        runners: dict[tuple[str, str], AccountRunner],
        pairing: PairingBook,
        approved: dict[tuple[str, str], set[str]],
        clock: Callable[[], int],
        retention_ms: int,
        agent_name: str = "This assistant",
    ) -> None:
        self._writes = writes
        self._turns = turns
        self._outbox = outbox
        self._runners = runners
        self.pairing = pairing
        self.approved = approved
        self._clock = clock
        self._retention_ms = retention_ms
        self._forgotten_at = clock()  # the runtime forgot the old records as it started
        self._agent_name = agent_name
        self._refusals = RefusalLog()
        self._pending: dict[tuple[str, ...], _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Per session, the reply of its latest turn: each turn's reply waits for the one
        # before it (the agent runs a session's turns in order, but a delivery can be slow).
        self._replies: dict[str, asyncio.Future[None]] = {}
        # A pairing decision and its commit happen under this lock, so two messages from one
        # stranger cannot both be issued a code. Other messages are claimed concurrently
        # (sharing one commit: see `GroupWriter`).
        self._pairing = asyncio.Lock()

    # -- in -------------------------------------------------------------------------

    async def handle(self, message: InboundMessage) -> None:
        """Check and record one message; returns once it is persisted or dropped."""
        runner = self._runners[(message.channel, message.account_id)]
        account = runner.account
        now = self._clock()
        if now - self._forgotten_at >= FORGET_EVERY_MS:
            await self._forget(now)
        decision = decide_access(message, account, self.approved.get(account_key(message), set()))
        key, received = _key(message), message.received_at
        issued: PairingCode | None = None
        reason = decision.reason
        if decision.verdict is Verdict.PAIR:
            async with self._pairing:
                at = self._clock()
                # Codes expire while the gateway runs; drop them when a stranger comes, or
                # the book and `channel_pairing` keep one code per stranger ever seen.
                expired = self.pairing.expired(at)
                doomed = [(c.channel, c.code) for c in expired]
                request = self.pairing.propose(message, at)
                issued = request.code if request.new else None
                reason = request.reason
                row = _pairing_row(issued) if issued is not None else None
                fresh = await self._writes.write(
                    lambda conn: claim_inbound(conn, key, received, None, row, doomed)
                )
                self.pairing.remove(expired)
                if fresh and issued is not None:
                    self.pairing.add(issued)
        else:
            record = message_to_json(message) if decision.verdict is Verdict.ADMIT else None
            fresh = await self._writes.write(
                lambda conn: claim_inbound(conn, key, received, record)
            )
        if not fresh:
            logger.debug("duplicate %s message %s dropped", account.key, message.message_id)
            return
        if decision.verdict is Verdict.ADMIT:
            self._debounce(message, runner.account.debounce_ms)
            return
        if decision.verdict is not Verdict.IGNORE and self._refusals.should_log(
            message.channel, message.account_id, message.sender.id, now
        ):
            logger.info(
                "%s refused a message from sender %s in chat %s: %s",
                account.key,
                message.sender.id,
                message.chat.id,
                reason,
            )
        if issued is not None:
            self._spawn(self._send_pairing_code(runner, message, issued))

    async def _forget(self, now: int) -> None:
        """Drop the dedupe records past their retention (a running gateway must, not just start)."""
        self._forgotten_at = now
        cutoff = now - self._retention_ms
        await self._writes.write(lambda conn: forget_inbound_before(conn, cutoff))

    async def _send_pairing_code(
        self, runner: AccountRunner, message: InboundMessage, code: PairingCode
    ) -> None:
        await self._outbox.deliver(
            runner, reply_target(message), pairing_reply(code, self._agent_name)
        )

    # -- debounce ---------------------------------------------------------------------

    def _debounce(self, message: InboundMessage, debounce_ms: int) -> None:
        """Merge rapid text messages of one sender in one chat; media and commands go now."""
        key = (
            message.channel,
            message.account_id,
            message.chat.id,
            message.thread_id or "",
            message.sender.id,
        )
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending([])
        pending.messages.append(message)
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None
        if debounce_ms <= 0 or message.media or message.command:
            self._flush(key)
            return
        loop = asyncio.get_running_loop()
        pending.timer = loop.call_later(debounce_ms / 1000, self._flush, key)

    def _flush(self, key: tuple[str, ...]) -> None:
        pending = self._pending.pop(key, None)
        if pending is not None and pending.messages:
            self._spawn(self._turn(pending.messages))

    # -- turns ------------------------------------------------------------------------

    def recover(self, records: list[str]) -> int:
        """Run again the turns of messages that were admitted but never answered."""
        count = 0
        for text in records:
            try:
                message = message_from_json(text)
            except (ValueError, TypeError, KeyError):
                logger.warning("an unreadable open channel message was skipped")
                continue
            if (message.channel, message.account_id) in self._runners:
                self._spawn(self._turn([message]))
                count += 1
        return count

    async def _turn(self, messages: list[InboundMessage]) -> None:
        last = messages[-1]
        key = session_key(last)
        # Taken before the first await, so turns queue in the order they were spawned.
        before, mine = self._replies.get(key), asyncio.get_running_loop().create_future()
        self._replies[key] = mine
        try:
            await self._answer(messages, key, before)
        finally:
            mine.set_result(None)
            if self._replies.get(key) is mine:
                del self._replies[key]

    async def _answer(
        self, messages: list[InboundMessage], key: str, before: asyncio.Future[None] | None
    ) -> None:
        """Run the turn and deliver its reply once the session's previous reply went out."""
        last = messages[-1]
        runner = self._runners[(last.channel, last.account_id)]
        target = reply_target(last)
        run_id = f"{last.channel}:{last.account_id}:{last.message_id}"
        answers = [_key(m) for m in messages]
        reply = self._reply_stream(runner)
        streaming: asyncio.Task[Delivery] | None = None
        if reply is not None and before is not None:
            await asyncio.shield(before)  # a streamed reply shows from its first words
        if reply is not None:
            streaming = asyncio.create_task(
                self._outbox.stream(
                    runner, target, reply, session_key=key, run_id=run_id, answers=answers
                )
            )
        self._acknowledge(runner, target, last)
        typing = self._spawn_typing(runner, target)
        delivery: Delivery | None = None
        try:
            outcome = await self._turns.run_turn(
                key,
                wrap_untrusted(messages),
                run_id,
                on_text=reply.update if reply is not None else None,
            )
            if typing is not None:
                typing.cancel()
            if reply is not None and streaming is not None:
                # What was shown stays: a failed run's partial text gets its last edit too.
                reply.end(outcome.text if outcome.ok else reply.machine.text)
                delivery = await streaming
                if delivery.attempts == 0:
                    delivery = None
        finally:
            if typing is not None:
                typing.cancel()
            if streaming is not None and not streaming.done():
                streaming.cancel()  # the turn was cancelled: its open message runs again
        if delivery is None and (not outcome.ok or not outcome.text.strip()):
            reason = outcome.error or "the agent gave no answer"
            logger.info("%s turn %s ended without a reply: %s", runner.account.key, run_id, reason)
            await self._writes.write(lambda conn: finish_inbound(conn, answers))
            return
        if delivery is None:
            if before is not None:
                await asyncio.shield(before)
            delivery = await self._outbox.deliver(
                runner, target, outcome.text, session_key=key, run_id=run_id, answers=answers
            )
        if not delivery.ok:
            await self._turns.note(
                key,
                f"Delivery to {runner.account.key} failed after {delivery.attempts} attempt(s):"
                f" {delivery.error}",
                "delivery-failed",
            )

    def _reply_stream(self, runner: AccountRunner) -> ReplyStream | None:
        """A stream for the reply when the account edits messages as they are written."""
        adapter = runner.adapter
        if adapter is None or not adapter.capabilities.edits or not isinstance(adapter, EditsText):
            return None
        if runner.account.options.get("stream") != "edit":
            return None
        return ReplyStream(ReplyStreamMachine(adapter.capabilities.max_text))

    def _acknowledge(self, runner: AccountRunner, target: Target, message: InboundMessage) -> None:
        """Add the account's `ack_reaction` to the message the turn answers, if it has one."""
        name = runner.account.options.get("ack_reaction")
        adapter = runner.adapter
        if not name or adapter is None or not adapter.capabilities.reactions:
            return
        if not isinstance(adapter, Reacts):
            return

        async def react() -> None:
            try:
                await adapter.react(target, message.message_id, name)
            except Exception as exc:  # only a courtesy: a failed reaction never fails the turn
                logger.info("%s: the ack reaction failed: %s", runner.account.key, exc)

        self._spawn(react())

    def _spawn_typing(self, runner: AccountRunner, target: Target) -> asyncio.Task[None] | None:
        adapter = runner.adapter
        if adapter is None or not adapter.capabilities.typing:
            return None

        async def keep_typing() -> None:
            while True:
                try:
                    await runner.ensure_adapter().typing(target)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    return  # only a courtesy: a failed indicator never fails the turn
                await asyncio.sleep(TYPING_EVERY_S)

        return self._spawn(keep_typing())

    # -- tasks ------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("a channel turn failed", exc_info=task.exception())

    async def stop(self) -> None:
        """Cancel pending debounces and running turns (open messages run again at start)."""
        for pending in self._pending.values():
            if pending.timer is not None:
                pending.timer.cancel()
        self._pending.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def account_key(message: InboundMessage) -> tuple[str, str]:
    """Return (channel, account) of a message."""
    return (message.channel, message.account_id)
