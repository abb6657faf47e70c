"""The gateway's agent side: sessions, runs, the bus and what subscribes to it.

Bus handlers are added in this order, and the order matters: the transcript write for a
finished run is queued before the `chat` final goes out, so a client that reads
`chat.history` after seeing the final always finds the reply.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ..agents.backend import AgentBackend, HistoryMessage
from ..agents.manager import RunManager
from ..agents.run import Run, RunFinished, RunMessage
from ..agents.sessions import ChangeReason, SessionBook, message_event, row
from ..bus import Bus
from ..config import AgentSection
from ..store import StateStore
from ..store.sessions_repo import SessionRecord, StoredMessage
from .broadcaster import Broadcaster
from .run_relay import RunRelay

__all__ = ["AgentService"]


class AgentService:
    """Own the bus, the session book and the run manager of one gateway."""

    def __init__(
        self,
        *,
        store: StateStore,
        settings: AgentSection,
        backend: AgentBackend,
        broadcaster: Broadcaster[Any],
        clock: Callable[[], int],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._broadcaster = broadcaster
        self.bus: Bus[RunMessage] = Bus()
        self.sessions = SessionBook(
            store, clock, self._announce_session, on_message=self._announce_message
        )
        self.runs = RunManager(self.bus, backend, self._history, clock)
        # Connection ids that called `sessions.subscribe`.
        self.session_subscribers: set[str] = set()
        # Session keys each connection follows with `sessions.messages.subscribe`.
        self.message_subscribers: dict[str, set[str]] = {}
        # Run ids whose user message is being committed, so a duplicate waits for it.
        self._starting: dict[str, asyncio.Future[None]] = {}
        self._starts: set[asyncio.Future[Run]] = set()
        self.bus.add_handler(self._record_reply)
        self.bus.add_handler(RunRelay(broadcaster, clock))

    async def start(self) -> None:
        """Load the sessions from state.db."""
        await self.sessions.load()

    async def stop(self) -> None:
        """Abort every run (clients see them end), then let queued writes commit."""
        await self.runs.stop()
        await self.sessions.flush()

    # -- runs -----------------------------------------------------------------------

    async def run_once(
        self,
        run_id: str,
        session: Callable[[], Awaitable[SessionRecord]],
        message: str,
        timeout_s: float,
    ) -> tuple[Run, bool]:
        """Return the run `run_id`, starting it only if no run has that id (spec §9).

        `session` validates the request and resolves its session; it is only called for
        a new run, and its errors propagate without anything being recorded.

        Returns:
            The run and whether this call created it.
        """
        while True:
            run = self.runs.get(run_id)
            if run is not None:
                return run, False
            starting = self._starting.get(run_id)
            if starting is None:
                break
            await asyncio.shield(starting)
        claim: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._starting[run_id] = claim
        try:
            record = await session()
            return await self.start_run(record, message, run_id, timeout_s), True
        finally:
            del self._starting[run_id]
            claim.set_result(None)

    async def start_run(
        self, record: SessionRecord, message: str, run_id: str, timeout_s: float
    ) -> Run:
        """Commit the user's message, then queue a run that answers it."""
        # Shielded as a whole: once the message is on its way to the transcript its run is
        # queued too, even if the requester goes away meanwhile (a retry then finds the run).
        task = asyncio.ensure_future(self._start_run(record, message, run_id, timeout_s))
        self._starts.add(task)
        task.add_done_callback(self._starts.discard)
        return await asyncio.shield(task)

    async def _start_run(
        self, record: SessionRecord, message: str, run_id: str, timeout_s: float
    ) -> Run:
        session_id = record.session_id
        stored = await self.sessions.append(record, "user", message, run_id=run_id)
        run = Run(
            run_id=run_id,
            session_key=record.key,
            session_id=session_id,
            message=message,
            timeout_s=timeout_s,
            accepted_at=self.clock(),
            message_row=stored.seq,
        )
        self.runs.submit(run)
        if self.sessions.get(record.key) is not record or record.session_id != session_id:
            # Reset or deleted while the message was being stored: that abort missed this run.
            self.runs.abort(run_id)
        return run

    async def _history(self, run: Run) -> list[HistoryMessage]:
        """Return the conversation as it stands when ``run`` starts, oldest first.

        By `seq`, a reply is stored after the user messages queued while it ran; the model
        must see each question followed by its answer, so the messages of runs still
        waiting (and this run's own, which it gets as the prompt) are left out.
        """
        limit = self.settings.history_limit
        if limit <= 0:
            return []
        waiting = {r.run_id for r in self.runs.active_for(run.session_key) if r is not run}
        stored = await self.sessions.recent_messages(run.session_id, limit + len(waiting) + 1)
        kept = [
            HistoryMessage(m.role, m.text)
            for m in stored
            if not (m.role == "user" and (m.run_id == run.run_id or m.run_id in waiting))
        ]
        return kept[-limit:]

    def _record_reply(self, message: RunMessage) -> None:
        if isinstance(message, RunFinished) and message.run.text:
            run = message.run
            self.sessions.append_later(
                run.session_key, run.session_id, "assistant", run.text, run.run_id
            )

    def new_run_id(self) -> str:
        """Return a fresh run id for runs started without an idempotency key."""
        return str(uuid.uuid4())

    # -- sessions.changed -------------------------------------------------------------

    def forget_connection(self, conn_id: str) -> None:
        """Stop sending `sessions.changed` and `session.message` to a closed connection."""
        self.session_subscribers.discard(conn_id)
        self.message_subscribers.pop(conn_id, None)

    def follow_messages(self, conn_id: str, key: str, *, follow: bool) -> None:
        """Start or stop sending the session's `session.message` events to a connection."""
        keys = self.message_subscribers.setdefault(conn_id, set())
        if follow:
            keys.add(key)
            return
        keys.discard(key)
        if not keys:
            del self.message_subscribers[conn_id]

    def _announce_message(self, record: SessionRecord, message: StoredMessage) -> None:
        followers = {c for c, keys in self.message_subscribers.items() if record.key in keys}
        if not followers:
            return
        payload = message_event(record, message)
        self._broadcaster.broadcast_per_protocol(
            "session.message", {3: payload, 4: payload}, only=followers
        )

    def _announce_session(
        self, reason: ChangeReason, key: str, record: SessionRecord | None
    ) -> None:
        if not self.session_subscribers:
            return
        payload: dict[str, Any] = {"sessionKey": key, "reason": reason.value}
        if record is not None and reason is not ChangeReason.DELETED:
            payload.update(row(record))
        self._broadcaster.broadcast_per_protocol(
            "sessions.changed",
            {3: payload, 4: payload},
            only=self.session_subscribers,
        )
