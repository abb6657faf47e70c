"""Chat sessions and transcripts: rows cached in memory, every change written to state.db.

Invariants:
- A message the caller was told about is committed: `append` returns after the write.
- `append_later` queues its write at once (the store runs calls in submission order), so
  a `chat.history` read issued after it always sees the message, even before it commits.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from typing import Any, Final

from ..store import StateStore
from ..store.sessions_repo import (
    SessionRecord,
    StoredMessage,
    append_message,
    delete_session,
    insert_session,
    load_message_times,
    load_messages,
    load_messages_after,
    load_sessions,
    reset_session,
)

__all__ = [
    "DEFAULT_AGENT_ID",
    "MAIN_SESSION_KEY",
    "ChangeReason",
    "MessageCommitted",
    "SessionBook",
    "SessionChange",
    "canonical_key",
    "message_event",
    "split_key",
    "wire_message",
]

logger = logging.getLogger(__name__)

DEFAULT_AGENT_ID: Final = "main"
MAIN_SESSION_KEY: Final = f"agent:{DEFAULT_AGENT_ID}:main"
_RECENT: Final = 10


class ChangeReason(StrEnum):
    """Why `sessions.changed` fired (spec §10.4)."""

    CREATED = "created"
    UPDATED = "updated"
    RESET = "reset"
    DELETED = "deleted"


SessionChange = Callable[[ChangeReason, str, SessionRecord | None], None]
# Told of each message once it is committed (with its `seq`), for `session.message`.
MessageCommitted = Callable[[SessionRecord, StoredMessage], None]


def canonical_key(raw: str, agent_id: str = DEFAULT_AGENT_ID) -> str:
    """Return `raw` as `agent:<agentId>:<key>`; a bare key belongs to `agent_id`."""
    if raw.startswith("agent:"):
        return raw
    return f"agent:{agent_id}:{raw}"


def split_key(key: str) -> tuple[str, str] | None:
    """Return (agentId, rest) of a canonical key, or None when it is malformed."""
    parts = key.split(":", 2)
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def row(record: SessionRecord) -> dict[str, Any]:
    """Return the wire SessionRow of a record."""
    data: dict[str, Any] = {
        "key": record.key,
        "sessionId": record.session_id,
        "agentId": record.agent_id,
    }
    if record.label is not None:
        data["label"] = record.label
    if record.model is not None:
        data["model"] = record.model
    data["createdAt"] = record.created_at
    data["updatedAt"] = record.updated_at
    data["messageCount"] = record.message_count
    return data


def wire_message(message: StoredMessage, max_chars: int | None = None) -> dict[str, Any]:
    """Return a transcript message as `chat.history` and `session.message` carry it."""
    text = message.text if max_chars is None else message.text[:max_chars]
    wire: dict[str, Any] = {
        "role": message.role,
        "content": [{"type": "text", "text": text}],
        "timestamp": message.ts,
    }
    if message.label is not None:
        wire["label"] = message.label
    # OpenClaw's transcript metadata: clients match a stored user message to the one they
    # showed while sending by its idempotency key (a user message's run id).
    meta: dict[str, Any] = {"id": message.message_id, "seq": message.seq}
    if message.role == "user" and message.run_id is not None:
        meta["idempotencyKey"] = message.run_id
    wire["__openclaw"] = meta
    return wire


def message_event(record: SessionRecord, message: StoredMessage) -> dict[str, Any]:
    """Return the `session.message` payload of a committed message (OpenClaw's fields)."""
    payload: dict[str, Any] = {
        "sessionKey": record.key,
        "agentId": record.agent_id,
        "message": wire_message(message),
        "messageId": message.message_id,
        "messageSeq": message.seq,
    }
    if message.run_id is not None:
        payload["runId"] = message.run_id
    return payload


class SessionBook:
    """Every session of this gateway, backed by state.db."""

    def __init__(
        self,
        store: StateStore,
        clock: Callable[[], int],
        on_change: SessionChange,
        on_message: MessageCommitted | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_change = on_change
        self._on_message = on_message
        self._sessions: dict[str, SessionRecord] = {}
        self._pending: set[asyncio.Task[Any]] = set()
        self._creating: dict[str, asyncio.Future[None]] = {}  # key -> its insert in flight

    async def load(self) -> None:
        """Read every session; create the main session on first start."""
        for record in await self._store.read(load_sessions):
            self._sessions[record.key] = record
        if MAIN_SESSION_KEY not in self._sessions:
            await self.create(MAIN_SESSION_KEY, announce=False)

    async def flush(self) -> None:
        """Wait for every queued write (used before the store closes)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    # -- rows -----------------------------------------------------------------------

    def get(self, key: str) -> SessionRecord | None:
        """Return the session `key`, or None."""
        return self._sessions.get(key)

    def by_session_id(self, session_id: str) -> SessionRecord | None:
        """Return the session whose current id is `session_id`, or None."""
        for record in self._sessions.values():
            if record.session_id == session_id:
                return record
        return None

    def all(self) -> list[SessionRecord]:
        """Return every session, most recently updated first."""
        return sorted(self._sessions.values(), key=lambda r: (r.updated_at, r.key), reverse=True)

    def counts(self) -> dict[str, Any]:
        """Return `{count, recent:[{key, updatedAt}]}` for health and status."""
        recent = [{"key": r.key, "updatedAt": r.updated_at} for r in self.all()[:_RECENT]]
        return {"count": len(self._sessions), "recent": recent}

    async def create(
        self,
        key: str,
        *,
        label: str | None = None,
        model: str | None = None,
        announce: bool = True,
    ) -> SessionRecord:
        """Create the session `key` (it must not exist) and commit it."""
        now = self._clock()
        agent_id = (split_key(key) or (DEFAULT_AGENT_ID, ""))[0]
        record = SessionRecord(key, str(uuid.uuid4()), agent_id, label, model, now, now)
        self._sessions[key] = record
        # The write is queued now and commits even if this caller is cancelled, so only a
        # failed write takes the record back out; others wait for it in `ensure`.
        write = asyncio.ensure_future(
            self._store.write(lambda conn: insert_session(conn, replace(record)))
        )
        self._creating[key] = write
        write.add_done_callback(lambda _: self._creating.pop(key, None))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            raise
        except BaseException:
            self._sessions.pop(key, None)
            raise
        if announce:
            self._on_change(ChangeReason.CREATED, key, record)
        return record

    async def ensure(self, key: str) -> SessionRecord:
        """Return the session `key`, creating it when it does not exist.

        A session still being created is waited for: its creator resumes first, so the
        messages of two sends to a new session are stored (and run) in arrival order.
        """
        creating = self._creating.get(key)
        if creating is not None:
            await asyncio.shield(creating)
        return self._sessions.get(key) or await self.create(key)

    async def reset(self, key: str) -> SessionRecord | None:
        """Give the session a new id and an empty transcript; None if unknown."""
        record = self._sessions.get(key)
        if record is None:
            return None
        old_id, new_id, now = record.session_id, str(uuid.uuid4()), self._clock()
        # Switched before the write: a reply of an aborted run that lands meanwhile sees
        # the new id and is not stored into the transcript being cleared.
        record.session_id, record.message_count, record.updated_at = new_id, 0, now
        await self._store.write(lambda conn: reset_session(conn, key, old_id, new_id, now))
        self._on_change(ChangeReason.RESET, key, record)
        return record

    async def delete(self, key: str) -> bool:
        """Remove the session and its transcript; return whether it existed."""
        record = self._sessions.get(key)
        if record is None:
            return False
        session_id = record.session_id
        del self._sessions[key]  # first, for the same reason as in `reset`
        await self._store.write(lambda conn: delete_session(conn, key, session_id))
        self._on_change(ChangeReason.DELETED, key, None)
        return True

    # -- messages -------------------------------------------------------------------

    def _message(self, record: SessionRecord, role: str, text: str, **extra: Any) -> StoredMessage:
        now = max(self._clock(), record.updated_at)
        record.message_count += 1
        record.updated_at = now
        return StoredMessage(0, str(uuid.uuid4()), role, text, ts=now, **extra)

    async def append(
        self,
        record: SessionRecord,
        role: str,
        text: str,
        *,
        label: str | None = None,
        run_id: str | None = None,
    ) -> StoredMessage:
        """Append a message and return it once committed (with its `seq`)."""
        message = self._message(record, role, text, label=label, run_id=run_id)
        key, session_id = record.key, record.session_id
        seq = await self._store.write(lambda conn: append_message(conn, key, session_id, message))
        self._on_change(ChangeReason.UPDATED, key, record)
        committed = replace(message, seq=seq)
        if self._on_message is not None:
            self._on_message(record, committed)
        return committed

    def append_later(self, key: str, session_id: str, role: str, text: str, run_id: str) -> None:
        """Queue a message for a session that may since have been reset or deleted."""
        record = self._sessions.get(key)
        if record is None or record.session_id != session_id:
            return  # the transcript it belonged to is gone
        message = self._message(record, role, text, label=None, run_id=run_id)
        write = self._store.write(lambda conn: append_message(conn, key, session_id, message))
        task = asyncio.create_task(self._committed(write, key, message))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _committed(self, write: Any, key: str, message: StoredMessage) -> None:
        try:
            seq = await write
        except Exception:
            logger.exception("could not store a message of session %s", key)
            return
        record = self._sessions.get(key)
        if record is not None:
            self._on_change(ChangeReason.UPDATED, key, record)
            if self._on_message is not None:
                self._on_message(record, replace(message, seq=seq))

    async def messages(
        self, record: SessionRecord, *, limit: int, before: int | None = None
    ) -> tuple[list[StoredMessage], bool]:
        """Return up to `limit` messages older than `before`, oldest first, and more?"""
        session_id = record.session_id
        return await self._store.read(
            lambda conn: load_messages(conn, session_id, limit=limit, before=before)
        )

    async def messages_after(
        self, record: SessionRecord, *, after: int, limit: int
    ) -> tuple[list[StoredMessage], bool]:
        """Return up to `limit` messages newer than `after`, oldest first, and more?"""
        session_id = record.session_id
        return await self._store.read(
            lambda conn: load_messages_after(conn, session_id, after=after, limit=limit)
        )

    async def message_times(self, start_ms: int, end_ms: int) -> list[tuple[str, str, int]]:
        """Return `(session_id, role, ts)` of every stored message in `[start_ms, end_ms]`."""
        return await self._store.read(lambda conn: load_message_times(conn, start_ms, end_ms))

    async def recent_messages(self, session_id: str, limit: int) -> list[StoredMessage]:
        """Return the newest `limit` messages of a transcript, oldest first."""
        messages, _ = await self._store.read(
            lambda conn: load_messages(conn, session_id, limit=limit)
        )
        return messages
