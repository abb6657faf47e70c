"""Matrix through the client-server API, with matrix-nio as the client.

Only nio's `AsyncClient` (requests, response and event parsing, room state) is used, not
its `sync_forever` or callbacks: the sync loop is ours, so `next_batch` is persisted only
after every message of a sync was handed to the channel layer.

- Login: an access token (checked with `whoami`), or a password (`login` once per adapter,
  on a fixed device id per account, so restarts reuse one device instead of piling them
  up). A refused credential fails the account (no retry storm); a password session whose
  token the homeserver later drops logs in again on the next start.
- Sync: `/sync` long polls from the persisted `next_batch`; each answered sync is a sign of
  life. The first sync of every start asks for the full room state (membership decides
  DM or room, and mentions need the bot's display name). An account's very first sync
  (no token persisted yet) answers nothing: history from before the gateway is not new
  mail. A `limited` timeline (more events arrived than one sync carries, e.g. after a
  long outage) is backfilled with `/messages` down to the previous token, so nothing in
  between is lost. Transient failures are retried in place with a short backoff; after a
  few in a row the supervisor rebuilds the account.
- Invites are joined or declined as `policy.decide_invite` says (through `link.may_join`).
- A room with at most two members (the bot and one person) is a DM; others are groups,
  gated by mention: the bot's id in `m.mentions`, its id, localpart or display name in
  the text, or a reply to one of its messages.
- Threads (`m.thread` relations: the thread root is the thread id), replies (reply
  fallbacks are stripped from the text), typing notices (for turns longer than 0.8 s),
  media both ways (`m.image`,
  `m.file`, `m.audio`, `m.video` are downloaded under `<home>/media/matrix/<account>/`;
  outbound files are uploaded to the media repository), 8000-character chunks.
- Not handled: end-to-end encrypted rooms (nio's `e2e` extra and a persistent key store
  are a later step: README "Matrix"), edits (`m.replace`), notices from other bots
  (`m.notice`, so two bots never loop), redactions, reactions; anything unknown is skipped.

Reading events and building message content, which need no I/O, are in `matrix_protocol.py`.
"""

from __future__ import annotations

import asyncio
import io
import logging
import mimetypes
from collections import OrderedDict
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Final, TypeVar

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    InviteMemberEvent,
    LoginResponse,
    MessageDirection,
    RoomMessagesResponse,
    SyncResponse,
    UploadResponse,
    WhoamiResponse,
)
from nio.rooms import MatrixRoom

from .base import (
    AccountConfig,
    AccountLink,
    AuthFailed,
    Capabilities,
    ChannelError,
    InboundMessage,
    Media,
    OutboundMedia,
    PermanentSendError,
    RateLimited,
    Target,
)
from .matrix_protocol import (
    MEDIA_KINDS,
    RoomView,
    device_id,
    message_content,
    normalize,
    safe_name,
)

__all__ = ["MAX_TEXT", "MatrixAdapter"]

logger = logging.getLogger(__name__)
# nio logs every retried request and every event it cannot validate at WARNING.
logging.getLogger("nio").setLevel(logging.ERROR)

T = TypeVar("T")

#: Characters per message: an event may hold 64 KiB of JSON, and one character may take
#: six bytes once escaped; this stays well inside that and reads fine in any client.
MAX_TEXT: Final = 8000
# Consecutive failed syncs retried in place before the supervisor rebuilds the account.
SYNC_RETRIES: Final = 5
# Timeline events per room in one sync; more mean a `limited` timeline, backfilled.
TIMELINE_LIMIT: Final = 100
# At most this many events are backfilled per room and sync (older ones are reported).
BACKFILL_MAX: Final = 2000
MAX_DOWNLOAD: Final = 50 * 1024 * 1024
TYPING_TIMEOUT_MS: Final = 10_000
# A turn shorter than this shows no typing notice (see `MatrixAdapter.typing`).
TYPING_GRACE_S: Final = 0.8
# Event ids the bot sent, remembered so a reply to one counts as a mention.
OWN_EVENTS: Final = 1000
SYNC_FILTER: Final = {
    "room": {"timeline": {"limit": TIMELINE_LIMIT}, "state": {"lazy_load_members": False}},
    "presence": {"not_types": ["*"]},
}
# Errors that mean this request will never succeed as it is.
_PERMANENT: Final = frozenset(
    {"M_FORBIDDEN", "M_NOT_FOUND", "M_BAD_JSON", "M_NOT_JSON", "M_TOO_LARGE", "M_INVALID_PARAM"}
)
_TOKEN_REFUSED: Final = frozenset({"M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_USER_DEACTIVATED"})
_LOGIN_REFUSED: Final = frozenset(
    {"M_FORBIDDEN", "M_USER_DEACTIVATED", "M_INVALID_USERNAME", "M_INVALID_PARAM"}
)


def _read_local(source: str) -> bytes:
    return Path(source).expanduser().read_bytes()


class MatrixAdapter:
    """One Matrix user the agent speaks as."""

    def __init__(self, account: AccountConfig, link: AccountLink) -> None:
        options = account.options
        self._homeserver: str = options["homeserver"]
        self._user_id: str = options["user_id"]
        if not self._homeserver or not self._user_id:
            missing = "homeserver" if not self._homeserver else "user_id"
            raise AuthFailed(f"[channels.matrix] of {account.key} needs {missing}")
        self._account = account
        self._link = link
        self._auth: str = options["auth"]
        self._device_name: str = options["device_name"]
        self._sync_timeout_s: int = options["sync_timeout_s"]
        self._token: str | None = account.secret if self._auth == "access_token" else None
        self._token_lock = asyncio.Lock()
        self.capabilities = Capabilities(
            dm=True,
            groups=True,
            threads=True,
            media=True,
            typing=True,
            max_text=MAX_TEXT,
            stall_after_s=2 * self._sync_timeout_s + 30,
        )
        self._sender: AsyncClient | None = None
        self._own_events: OrderedDict[str, None] = OrderedDict()
        self._typing: set[str] = set()
        # Invites not yet answered (a join that failed is tried again after the next sync).
        self._invites: dict[str, tuple[str, bool]] = {}
        # DM rooms by their other member, so `send --to @user:server` finds the room.
        self._dm_rooms: dict[str, str] = {}
        self._log = logging.LoggerAdapter(logger, {"account": account.key})

    # -- sessions -------------------------------------------------------------------

    def _client(self, token: str | None) -> AsyncClient:
        config = AsyncClientConfig(
            max_limit_exceeded=0,
            max_timeouts=0,
            request_timeout=60,
            encryption_enabled=False,
            store_sync_tokens=False,
        )
        client = AsyncClient(
            self._homeserver, self._user_id, device_id=device_id(self._account), config=config
        )
        client.user_id = self._user_id  # nio sets it only on login; typing needs it
        if token is not None:
            client.access_token = token
        return client

    async def _ensure_token(self) -> str:
        """Return the access token: the configured one, or one from a password login."""
        async with self._token_lock:
            if self._token is not None:
                return self._token
            client = self._client(None)
            try:
                answer = await self._call(
                    client.login(password=self._account.secret, device_name=self._device_name),
                    login=True,
                )
            finally:
                await client.close()
            assert isinstance(answer, LoginResponse)
            self._token = answer.access_token
            return self._token

    async def _sending(self) -> AsyncClient:
        """Return the client sends go through (apart from the sync's, which restarts)."""
        token = await self._ensure_token()
        if self._sender is not None and self._sender.access_token != token:
            old, self._sender = self._sender, None
            await old.close()
        if self._sender is None:
            self._sender = self._client(token)
        return self._sender

    # -- receiving ------------------------------------------------------------------

    async def run(self) -> None:
        """Sync until cancelled."""
        client = self._client(await self._ensure_token())
        try:
            who = await self._call(client.whoami())
            assert isinstance(who, WhoamiResponse)
            if who.user_id != self._user_id:
                raise AuthFailed(
                    f"the {self._account.key} access token belongs to {who.user_id},"
                    f" not to user_id {self._user_id}"
                )
            await self._sync_loop(client)
        finally:
            await client.close()

    async def _sync_loop(self, client: AsyncClient) -> None:
        since = await self._link.load_cursor()
        first, failures = True, 0
        while True:
            try:
                answer = await self._call(
                    client.sync(
                        timeout=0 if first else self._sync_timeout_s * 1000,
                        sync_filter=SYNC_FILTER,
                        since=since,
                        full_state=first or None,
                    )
                )
            except RateLimited as exc:
                self._link.progress()
                await asyncio.sleep(exc.retry_after_s)
                continue
            except (AuthFailed, asyncio.CancelledError):
                raise
            except ChannelError as exc:
                failures += 1
                self._link.error(str(exc))
                if failures >= SYNC_RETRIES:
                    raise
                await asyncio.sleep(min(0.5 * 2 ** (failures - 1), 8.0))
                continue
            assert isinstance(answer, SyncResponse)
            failures = 0
            if first:
                self._link.connected()
                first = False
            self._link.progress()
            await self._answer_invites(client, answer)
            if since is not None:  # the account's first sync is history, not new mail
                await self._receive(client, answer, since)
            since = answer.next_batch
            await self._link.save_cursor(since)

    async def _answer_invites(self, client: AsyncClient, answer: SyncResponse) -> None:
        for room_id in answer.rooms.leave:
            self._invites.pop(room_id, None)
        for room_id, info in answer.rooms.invite.items():
            for event in info.invite_state:
                # nio moves `content` out of a stripped state event's source: use its fields.
                if (
                    isinstance(event, InviteMemberEvent)
                    and event.state_key == self._user_id
                    and event.membership == "invite"
                ):
                    direct = (event.content or {}).get("is_direct") is True
                    self._invites[room_id] = (event.sender, direct)
        for room_id, (inviter, direct) in list(self._invites.items()):
            join = self._link.may_join(inviter, room_id, direct)
            request = client.join(room_id) if join else client.room_leave(room_id)
            try:
                await self._call(request)
            except (AuthFailed, asyncio.CancelledError):
                raise
            except PermanentSendError as exc:  # the room is gone, or the invite withdrawn
                self._link.error(f"could not answer an invite: {exc}")
            except ChannelError as exc:
                self._link.error(f"could not answer an invite: {exc}")
                continue  # tried again after the next sync
            self._invites.pop(room_id, None)

    async def _try(self, request: Awaitable[T], what: str) -> T | None:
        """Await a request that may fail without stopping the sync; report the failure."""
        try:
            return await self._call(request)
        except (AuthFailed, asyncio.CancelledError):
            raise
        except ChannelError as exc:
            self._link.error(f"could not {what}: {exc}")
            return None

    async def _receive(self, client: AsyncClient, answer: SyncResponse, since: str) -> None:
        """Hand every new message of a sync to the layer: rooms side by side, in order."""
        batches = []
        for room_id, info in answer.rooms.join.items():
            events = [e.source for e in info.timeline.events if isinstance(e.source, dict)]
            if info.timeline.limited and info.timeline.prev_batch:
                events = await self._backfill(client, room_id, info.timeline.prev_batch, since) + (
                    events
                )
            room = client.rooms.get(room_id)
            batches.append(self._room_messages(client, room_id, room, events))
        rooms = await asyncio.gather(*batches)
        await asyncio.gather(*(self._deliver_in_order(messages) for messages in rooms))

    async def _deliver_in_order(self, messages: list[InboundMessage]) -> None:
        for message in messages:
            await self._link.deliver(message)

    async def _backfill(
        self, client: AsyncClient, room_id: str, start: str, since: str
    ) -> list[dict[str, Any]]:
        """Return the events between `since` and `start` (oldest first): a gap's contents."""
        found: list[dict[str, Any]] = []
        token: str | None = start
        while token and len(found) < BACKFILL_MAX:
            page = await self._call(
                client.room_messages(
                    room_id,
                    start=token,
                    end=since,
                    direction=MessageDirection.back,
                    limit=TIMELINE_LIMIT,
                )
            )
            assert isinstance(page, RoomMessagesResponse)
            found += [e.source for e in page.chunk if isinstance(e.source, dict)]
            if not page.chunk or page.end == token:
                break
            token = page.end
        if len(found) >= BACKFILL_MAX:
            self._link.error(f"more than {BACKFILL_MAX} events were missed in a room")
        found.reverse()
        return found

    async def _room_messages(
        self,
        client: AsyncClient,
        room_id: str,
        room: MatrixRoom | None,
        events: list[dict[str, Any]],
    ) -> list[InboundMessage]:
        direct = room is not None and 0 < room.member_count <= 2
        if room is not None and direct:
            for user in room.users:
                if user != self._user_id:
                    self._dm_rooms[user] = room_id
        if not direct:
            # In a room joined just now, what came before the bot's join is history.
            for index, event in enumerate(events):
                if (
                    event.get("type") == "m.room.member"
                    and event.get("state_key") == self._user_id
                    and (event.get("content") or {}).get("membership") == "join"
                ):
                    events = events[index + 1 :]
                    break
        names = [self._user_id[1:].split(":", 1)[0].lower()]
        if room is not None:
            display = room.user_name(self._user_id)
            if display and display != self._user_id:
                names.append(display.lower())
        view = RoomView(
            room_id=room_id,
            direct=direct,
            title=room.display_name if room is not None else "",
            me=self._user_id,
            my_names=tuple(names),
        )
        messages = []
        for event in events:
            sender = event.get("sender")
            name = ""
            if room is not None and isinstance(sender, str):
                name = room.user_name(sender) or ""
            media = await self._download(client, event)
            message = normalize(event, view, self._account, name, media, self._own_events)
            if message is not None:
                messages.append(message)
        return messages

    async def _download(self, client: AsyncClient, event: dict[str, Any]) -> tuple[Media, ...]:
        """Download an event's file into the media folder (files only, never for others)."""
        content = event.get("content")
        if event.get("type") != "m.room.message" or not isinstance(content, dict):
            return ()
        kind = MEDIA_KINDS.get(str(content.get("msgtype")))
        url = content.get("url")
        if kind is None or not isinstance(url, str) or not url.startswith("mxc://"):
            return ()  # not a file, or an encrypted one (`file` instead of `url`)
        if event.get("sender") == self._user_id:
            return ()
        info = content.get("info")
        info = info if isinstance(info, dict) else {}
        size = info.get("size")
        if isinstance(size, int) and size > MAX_DOWNLOAD:
            self._link.error(f"a {size}-byte file was too large to download")
            return ()
        mime = info.get("mimetype") if isinstance(info.get("mimetype"), str) else None
        name = content.get("filename") or content.get("body") or ""
        suffix = Path(str(name)).suffix[:10] or mimetypes.guess_extension(mime or "") or ""
        path = self._link.media_dir / f"{safe_name(str(event.get('event_id', '')))}{suffix}"
        try:
            answer = await self._call(client.download(mxc=url, save_to=path))
        except asyncio.CancelledError:
            raise
        except ChannelError as exc:
            self._link.error(f"a {kind} could not be downloaded: {exc}")
            return ()
        del answer
        path.chmod(0o600)
        size = path.stat().st_size
        return (Media(str(path), mime or "application/octet-stream", size, kind),)  # type: ignore[arg-type]

    # -- sending --------------------------------------------------------------------

    async def _room_of(self, chat_id: str) -> str:
        if chat_id.startswith("!"):
            return chat_id
        if chat_id.startswith("@"):
            room = self._dm_rooms.get(chat_id)
            if room is None:
                raise PermanentSendError(
                    f"no direct room with {chat_id} is known yet; they must write to the bot"
                    " first, or send to a room id (!...)"
                )
            return room
        if chat_id.startswith("#"):
            client = await self._sending()
            answer = await self._call(client.room_resolve_alias(chat_id))
            return str(answer.room_id)
        raise PermanentSendError(f"{chat_id!r} is not a Matrix room id (!...), alias or user id")

    async def _send(self, target: Target, body: dict[str, Any]) -> str:
        room_id = await self._room_of(target.chat_id)
        client = await self._sending()
        answer = await self._call(
            client.room_send(room_id, "m.room.message", message_content(target, body))
        )
        event_id = str(answer.event_id)
        self._own_events[event_id] = None
        while len(self._own_events) > OWN_EVENTS:
            self._own_events.popitem(last=False)
        if room_id in self._typing:
            self._typing.discard(room_id)
            await self._try(client.room_typing(room_id, False), "clear the typing notice")
        return event_id

    async def send_text(self, target: Target, text: str) -> str:
        """Send one chunk of plain text (no HTML: nothing is read as markup)."""
        return await self._send(target, {"msgtype": "m.text", "body": text})

    async def send_media(self, target: Target, media: OutboundMedia) -> str:
        """Upload a file (a local path or an URL) and send it as an image or a file."""
        data, name = await self._read(media.source)
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        client = await self._sending()
        upload, _ = await self._call(
            client.upload(
                lambda _limited, _timeouts: io.BytesIO(data),
                content_type=mime,
                filename=name,
                filesize=len(data),
            )
        )
        assert isinstance(upload, UploadResponse)
        msgtype = "m.image" if media.kind == "photo" and mime.startswith("image/") else "m.file"
        body: dict[str, Any] = {
            "msgtype": msgtype,
            "body": media.caption or name,
            "filename": name,
            "url": upload.content_uri,
            "info": {"mimetype": mime, "size": len(data)},
        }
        return await self._send(target, body)

    async def _read(self, source: str) -> tuple[bytes, str]:
        if source.startswith(("http://", "https://")):
            name = Path(source.split("?")[0]).name or "file"
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(source, timeout=aiohttp.ClientTimeout(total=120)) as response,
                ):
                    if response.status != 200:
                        raise PermanentSendError(f"fetching the file answered {response.status}")
                    data = await response.content.read(MAX_DOWNLOAD + 1)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ChannelError(f"could not fetch the file: {type(exc).__name__}") from None
        else:
            path = Path(source)
            name = path.name
            try:
                data = await asyncio.to_thread(_read_local, source)
            except OSError as exc:
                raise PermanentSendError(f"cannot read {path}: {exc.strerror or exc}") from None
        if len(data) > MAX_DOWNLOAD:
            raise PermanentSendError(f"the file is larger than {MAX_DOWNLOAD} bytes")
        return data, name

    async def typing(self, target: Target) -> None:
        """Show "typing..." in the room (cleared by the next message the bot sends).

        The first notice of a turn waits `TYPING_GRACE_S`: the layer cancels typing when the
        agent is done, so a quick answer goes out without the notice and the notice's clear
        (each a homeserver write and a sync wake-up for everyone in the room).
        """
        room_id = await self._room_of(target.chat_id)
        if room_id not in self._typing:
            await asyncio.sleep(TYPING_GRACE_S)
        client = await self._sending()
        await self._call(client.room_typing(room_id, True, timeout=TYPING_TIMEOUT_MS))
        self._typing.add(room_id)

    async def logout(self) -> None:
        """End a password session (its device); a configured access token stays valid."""
        if self._auth != "password" or self._token is None:
            return
        client = self._client(self._token)
        try:
            await self._call(client.logout())
        finally:
            self._token = None
            await client.close()

    async def close(self) -> None:
        """Close the sending session."""
        sender, self._sender = self._sender, None
        if sender is not None:
            await sender.close()

    # -- errors ---------------------------------------------------------------------

    async def _call(self, request: Awaitable[T], *, login: bool = False) -> T:
        """Await a nio request, mapping its error answers and exceptions to the layer's."""
        try:
            answer = await request
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ChannelError(
                f"network error talking to {self._homeserver}: {type(exc).__name__}"
            ) from None
        failed = answer[0] if isinstance(answer, tuple) else answer
        if not isinstance(failed, ErrorResponse):
            return answer
        code = str(failed.status_code or "")
        text = f"{code or 'error'}: {failed.message}" if failed.message else code or "error"
        if code == "M_LIMIT_EXCEEDED":
            wait = (failed.retry_after_ms or 1000) / 1000
            raise RateLimited(f"the homeserver asked to wait {wait:g} s", wait)
        if login and code in _LOGIN_REFUSED:
            raise AuthFailed(
                f"the homeserver refused the {self._account.key} password login ({text});"
                " check user_id and password and run `clawgate channels login matrix`"
            )
        if code in _TOKEN_REFUSED:
            if self._auth == "password":
                self._token = None  # the next start logs in again
                raise ChannelError(f"the homeserver ended the session ({code}); logging in again")
            raise AuthFailed(
                f"the homeserver refused the {self._account.key} access token ({code});"
                " create a new one and run `clawgate channels login matrix`"
            )
        if code in _PERMANENT:
            raise PermanentSendError(f"the homeserver refused the request ({text})")
        raise ChannelError(f"homeserver error ({text})")
