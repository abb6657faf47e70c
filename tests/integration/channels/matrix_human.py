"""The person on the other side of a Matrix chat: a matrix-nio client of their own.

`Human` logs in with a registered account's token, syncs in the background and keeps
every room event and typing notice it sees, so a test can say things and wait for the
bot's answers. Its sync loop rides out a homeserver restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from dataclasses import dataclass, field
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    RoomCreateResponse,
    RoomPreset,
    RoomSendResponse,
    SyncResponse,
    UploadResponse,
)

from tests.integration.channels.harness import wait_for
from tests.integration.channels.synapse import MatrixAccount, Synapse

__all__ = ["WAIT_S", "Human", "MatrixWorld"]

#: Synapse on a loaded 2-core machine: generous, since a pass never waits this long.
WAIT_S = 90.0
# A sync carries 10 events per room by default; a burst of answers must not be cut short.
_SEE_EVERYTHING = {"room": {"timeline": {"limit": 1000}}}


class Human:
    """A Matrix user driven by the test."""

    def __init__(self, homeserver: str, account: MatrixAccount) -> None:
        self.account = account
        self.user_id = account.user_id
        config = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)
        self.client = AsyncClient(homeserver, account.user_id, device_id=account.device_id)
        self.client.config = config
        self.client.access_token = account.access_token
        self.client.user_id = account.user_id
        self.events: list[dict[str, Any]] = []
        self.typing: list[tuple[str, tuple[str, ...]]] = []
        self._since: str | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Sync once (to skip history) and keep syncing in the background."""
        answer = await self.client.sync(timeout=0)
        assert isinstance(answer, SyncResponse), answer
        self._since = answer.next_batch
        self._task = asyncio.create_task(self._sync_forever())

    async def close(self) -> None:
        """Stop syncing and close the session."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.close()

    async def _sync_forever(self) -> None:
        while True:
            try:
                answer = await self.client.sync(
                    timeout=5000, since=self._since, sync_filter=_SEE_EVERYTHING
                )
            except Exception:  # the homeserver restarting: try again shortly
                await asyncio.sleep(0.2)
                continue
            if not isinstance(answer, SyncResponse):
                await asyncio.sleep(0.2)
                continue
            for room_id, info in answer.rooms.join.items():
                for event in info.timeline.events:
                    self.events.append({**event.source, "room_id": room_id})
                for ephemeral in info.ephemeral:
                    users = getattr(ephemeral, "users", None)
                    if users is not None:
                        self.typing.append((room_id, tuple(users)))
            self._since = answer.next_batch
            self._changed.set()

    # -- acting ---------------------------------------------------------------------

    async def dm(self, bot: str) -> str:
        """Open a direct room with `bot` (an `is_direct` invite); return the room id."""
        answer = await self.client.room_create(
            is_direct=True, invite=[bot], preset=RoomPreset.trusted_private_chat
        )
        assert isinstance(answer, RoomCreateResponse), answer
        return str(answer.room_id)

    async def room(self, invite: list[str], name: str = "team") -> str:
        """Open a group room and invite `invite`; return the room id."""
        answer = await self.client.room_create(
            name=name, invite=invite, preset=RoomPreset.private_chat
        )
        assert isinstance(answer, RoomCreateResponse), answer
        return str(answer.room_id)

    async def send(
        self, room_id: str, content: dict[str, Any], kind: str = "m.room.message"
    ) -> str:
        """Send any event content; return its event id."""
        answer = await self.client.room_send(room_id, kind, content)
        assert isinstance(answer, RoomSendResponse), answer
        return str(answer.event_id)

    async def say(
        self,
        room_id: str,
        text: str,
        *,
        thread: str | None = None,
        reply_to: str | None = None,
        mention: str | None = None,
    ) -> str:
        """Send a text message, optionally in a thread, as a reply, or mentioning a user."""
        content: dict[str, Any] = {"msgtype": "m.text", "body": text}
        if mention is not None:
            content["m.mentions"] = {"user_ids": [mention]}
        if thread is not None:
            content["m.relates_to"] = {
                "rel_type": "m.thread",
                "event_id": thread,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": reply_to or thread},
            }
        elif reply_to is not None:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        return await self.send(room_id, content)

    async def upload(self, data: bytes, name: str, mime: str) -> str:
        """Upload a file to the media repository; return its mxc:// URI."""
        answer, _ = await self.client.upload(
            lambda *_: io.BytesIO(data), content_type=mime, filename=name, filesize=len(data)
        )
        assert isinstance(answer, UploadResponse), answer
        return str(answer.content_uri)

    async def download(self, mxc: str) -> bytes:
        """Download a file the bot sent."""
        answer = await self.client.download(mxc=mxc)
        assert not isinstance(answer, ErrorResponse), answer
        return bytes(answer.body)

    # -- observing ------------------------------------------------------------------

    def messages(self, room_id: str, sender: str, containing: str = "") -> list[dict[str, Any]]:
        """Return the `m.room.message` events `sender` sent to `room_id` with `containing`."""
        return [
            e
            for e in self.events
            if e["room_id"] == room_id
            and e.get("type") == "m.room.message"
            and e.get("sender") == sender
            and containing in str(e.get("content", {}).get("body", ""))
        ]

    async def wait_message(
        self, room_id: str, sender: str, containing: str = ""
    ) -> list[dict[str, Any]]:
        """Wait until `sender` said something containing `containing` in the room."""
        found: list[dict[str, Any]] = await wait_for(
            lambda: self.messages(room_id, sender, containing), timeout=WAIT_S
        )
        return found

    async def next_message(
        self, room_id: str, sender: str, containing: str, timeout: float = WAIT_S
    ) -> None:
        """Wait, woken by each sync rather than polling, until such a message arrived."""
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                if self.messages(room_id, sender, containing):
                    return
                await self._changed.wait()

    def membership(self, room_id: str, user_id: str) -> str | None:
        """Return the last membership of `user_id` in the room the human has seen."""
        state = [
            e
            for e in self.events
            if e["room_id"] == room_id
            and e.get("type") == "m.room.member"
            and e.get("state_key") == user_id
        ]
        return str(state[-1]["content"].get("membership")) if state else None


@dataclass
class MatrixWorld:
    """A homeserver with a fresh bot account and a fresh human, who is syncing."""

    synapse: Synapse
    bot: MatrixAccount
    human: Human
    others: list[Human] = field(default_factory=list)

    async def another_human(self, prefix: str = "carol") -> Human:
        """Register and start one more person (closed with the world)."""
        account = await asyncio.to_thread(self.synapse.register, prefix)
        person = Human(self.synapse.url, account)
        await person.start()
        self.others.append(person)
        return person

    async def close(self) -> None:
        """Stop every person's client."""
        for person in [self.human, *self.others]:
            await person.close()
