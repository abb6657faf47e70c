"""A local stand-in for a BlueBubbles server: its REST API, and the webhooks it POSTs.

Served on loopback; `[channels.imessage] server_url` points at `http://127.0.0.1:PORT`.
Every `/api/v1/...` request carries the server password as the query parameter `guid`
(aliases `password`, `token`), as BlueBubbles wants; a wrong or missing one is answered
401 with its error shape `{"status": 401, "message": ..., "error": {"type":
"Authentication Error", "message": "Unauthorized"}}`. Successes are `{"status": 200,
"message": ..., "data": ...}`. Implemented (shapes from bluebubbles-server's routers and
validators):

- `GET /api/v1/ping` -> `data: "pong"`; `GET /api/v1/server/info` -> `data: {computer_id,
  os_version, server_version, private_api, helper_connected, ...}`;
- `GET /api/v1/webhook` (list), `POST /api/v1/webhook` (`url`, `events`) -> `data: {id,
  url, events}`, `DELETE /api/v1/webhook/{id}`;
- `POST /api/v1/message/text` (`chatGuid`, `message`, `tempGuid`, `method`
  `apple-script` | `private-api`, `selectedMessageGuid`) -> `data: <message>`; AppleScript
  needs a `tempGuid`; a reply (`selectedMessageGuid`) implies the Private API, refused (400)
  when the server has it off; an unknown chat is a 400;
- `POST /api/v1/message/attachment` (multipart: `attachment` file, `chatGuid`, `tempGuid`,
  `name`, `method`) -> `data: <message>`;
- `GET /api/v1/attachment/{guid}/download` -> the file's bytes;
- `POST /api/v1/chat/{chatGuid}/typing` (Private API only) -> `data: null`;
- `POST /api/v1/message/query` (`after` ms, `sort`, `limit`, `with`) -> `data: [<message>]`,
  the messages the human side sent, oldest first with `sort: ASC`.

Webhooks: the server POSTs `{"type": "new-message", "data": <message>}` (and
`updated-message`, `message-send-error`, `typing-indicator`; `fail_delivery(guid)` plays
Messages failing one of the bot's messages after the send was accepted: the message comes
back with a non-zero `error`) as JSON to every registered URL whose `events`
holds the type or `*`, once, without signing it and without retrying a failure, as
BlueBubbles does. A test plays the human with `user_says(...)` (a DM when the chat guid
holds `;-;`, a group when it holds `;+;`) and reads what the bot sent in `sent`.
`script(path, *statuses)` answers the next requests to a path (`message/text`, `ping`, ...)
with those HTTP statuses (500, 503, 401) instead. `reach[prefix] = url` makes webhook URLs
registered under a public name (which a loopback test cannot resolve) go to `url`, and
`unreachable = True` makes every webhook POST fail as if the gateway could not be reached.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["PASSWORD", "FakeBlueBubbles", "Sent", "dm_guid", "group_guid"]

PASSWORD = "bb-server-password-for-tests-7Qx2"
#: The account the server's iMessage is signed in with.
ME = "bot@icloud.example"


def dm_guid(address: str) -> str:
    """The chat guid of a one-to-one iMessage chat with `address`."""
    return f"iMessage;-;{address}"


def group_guid(name: str) -> str:
    """The chat guid of a group chat."""
    return f"iMessage;+;chat{name}"


@dataclass
class Sent:
    """A message the bot sent through the REST API, or a typing indicator it showed."""

    path: str
    chat_guid: str
    text: str = ""
    temp_guid: str | None = None
    method: str | None = None
    selected_guid: str | None = None
    file_name: str | None = None
    file_bytes: int = 0


def _ok(data: Any, message: str = "Success") -> web.Response:
    return web.json_response({"status": 200, "message": message, "data": data})


def _error(status: int, message: str, kind: str, error: str) -> web.Response:
    body = {"status": status, "message": message, "error": {"type": kind, "message": error}}
    return web.json_response(body, status=status)


def _unauthorized() -> web.Response:
    return _error(
        401,
        "You are not authorized to access this resource",
        "Authentication Error",
        "Unauthorized",
    )


def _bad_request(error: str) -> web.Response:
    return _error(
        400,
        "You've made a bad request! Please check your request params & body",
        "Validation Error",
        error,
    )


class FakeBlueBubbles:
    """A running stand-in; `url` goes into config."""

    def __init__(self, *, private_api: bool = True) -> None:
        self.password = PASSWORD
        self.private_api = private_api
        self.sent: list[Sent] = []
        self.requests: list[str] = []
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []
        self.attachments: dict[str, bytes] = {}
        # Statuses of the webhook POSTs, in order (one per registered URL and event).
        self.deliveries: list[int] = []
        self.reach: dict[str, str] = {}
        self.unreachable = False
        self._scripts: dict[str, deque[int]] = defaultdict(deque)
        self._webhook_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.port = 0

    # -- life -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server's root URL (`/api/v1/...` is appended)."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/api/v1/ping", self._ping)
        app.router.add_get("/api/v1/server/info", self._info)
        app.router.add_get("/api/v1/webhook", self._list_webhooks)
        app.router.add_post("/api/v1/webhook", self._add_webhook)
        app.router.add_delete("/api/v1/webhook/{id}", self._delete_webhook)
        app.router.add_post("/api/v1/message/text", self._send_text)
        app.router.add_post("/api/v1/message/attachment", self._send_attachment)
        app.router.add_post("/api/v1/message/query", self._query)
        app.router.add_get("/api/v1/attachment/{guid}/download", self._download)
        app.router.add_post("/api/v1/chat/{guid}/typing", self._typing)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Stop listening."""
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def script(self, path: str, *statuses: int) -> None:
        """Answer the next requests to `/api/v1/<path>` with these HTTP statuses."""
        self._scripts[path].extend(statuses)

    # -- the human side -------------------------------------------------------------

    def message(
        self,
        text: str,
        *,
        sender: str = "+15550001111",
        chat: str | None = None,
        from_me: bool = False,
        attachments: tuple[tuple[str, str, bytes], ...] = (),
        thread_originator: str | None = None,
    ) -> dict[str, Any]:
        """Build a BlueBubbles message object (as webhooks and the API carry it)."""
        chat = chat or dm_guid(sender)
        guid = str(uuid.uuid4()).upper()
        files = []
        for name, mime, data in attachments:
            attachment_guid = str(uuid.uuid4()).upper()
            self.attachments[attachment_guid] = data
            files.append(
                {
                    "guid": attachment_guid,
                    "transferName": name,
                    "mimeType": mime,
                    "totalBytes": len(data),
                    "uti": "public.data",
                }
            )
        participants = [{"address": sender, "service": "iMessage"}]
        return {
            "guid": guid,
            "text": text if not attachments or text else "\ufffc",
            "isFromMe": from_me,
            "handle": None if from_me else {"address": sender, "service": "iMessage"},
            "chats": [
                {
                    "guid": chat,
                    "chatIdentifier": chat.split(";")[-1],
                    "displayName": "" if ";-;" in chat else f"Group {chat[-4:]}",
                    "participants": participants,
                    "style": 43 if ";+;" in chat else 45,
                }
            ],
            "attachments": files,
            "associatedMessageGuid": None,
            "associatedMessageType": None,
            "threadOriginatorGuid": thread_originator,
            "dateCreated": int(time.time() * 1000),
            "dateDelivered": 0,
            "dateRead": 0,
            "service": "iMessage",
            "hasAttachments": bool(files),
            "error": 0,
        }

    async def user_says(self, text: str, **options: Any) -> str:
        """A human sends `text` (see `message`): POST it to the webhooks; return its guid."""
        message = self.message(text, **options)
        self.history.append(message)
        await self.emit({"type": "new-message", "data": message})
        return str(message["guid"])

    async def fail_delivery(
        self, guid: str, code: int = 22, event: str = "updated-message"
    ) -> list[int]:
        """Messages gives up on the bot's message `guid`: emit it with `error` = `code`."""
        [message] = [m for m in self.history if m["guid"] == guid]
        message["error"] = code
        return await self.emit({"type": event, "data": message})

    async def emit(self, event: dict[str, Any]) -> list[int]:
        """POST `event` to every webhook registered for its type; return the statuses."""
        return [await self.post(url, event) for url in self.webhook_urls(str(event.get("type")))]

    def webhook_urls(self, event_type: str = "new-message") -> list[str]:
        """The registered URLs that receive `event_type`."""
        return [
            str(hook["url"])
            for hook in self.webhooks.values()
            if "*" in hook["events"] or event_type in hook["events"]
        ]

    async def post(self, url: str, body: Any, *, raw: bytes | None = None) -> int:
        """POST one webhook body (JSON, or `raw` bytes) to `url`; return the HTTP status."""
        assert self._http is not None
        data = raw if raw is not None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        for prefix, real in self.reach.items():
            if url.startswith(prefix):
                url = real + url[len(prefix) :]
        if self.unreachable:
            self.deliveries.append(0)
            return 0
        try:
            async with self._http.post(url, data=data, headers=headers) as response:
                status = response.status
        except aiohttp.ClientError:
            status = 0  # BlueBubbles logs the failure and moves on
        self.deliveries.append(status)
        return status

    async def wait_sent(
        self,
        count: int = 1,
        *,
        timeout: float = 10.0,
        check: Callable[[Sent], bool] | None = None,
        **match: Any,
    ) -> list[Sent]:
        """Wait until `count` sends pass `check` and match every `attr=value`; return them."""

        def matching() -> list[Sent]:
            return [
                s
                for s in self.sent
                if all(getattr(s, k) == v for k, v in match.items()) and (check is None or check(s))
            ]

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(matching()) >= count)
        return matching()

    async def wait_webhooks(self, count: int = 1, *, timeout: float = 10.0) -> list[str]:
        """Wait until `count` webhooks are registered; return their URLs."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.webhooks) >= count)
        return self.webhook_urls()

    async def _record(self, sent: Sent) -> None:
        async with self._changed:
            self.sent.append(sent)
            self._changed.notify_all()

    # -- the REST API -----------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path.removeprefix("/api/v1/")
        self.requests.append(path)
        given = [request.query.get(k) for k in ("guid", "password", "token")]
        if self.password not in given:
            return _unauthorized()
        script = self._scripts.get(path) or self._scripts.get(path.split("/")[0])
        if script:
            status = script.popleft()
            if status == 401:
                return _unauthorized()
            return _error(
                status, "The server has encountered an error", "Server Error", "Unknown error"
            )
        response: web.StreamResponse = await handler(request)
        return response

    async def _ping(self, request: web.Request) -> web.Response:
        return _ok("pong", "Ping received!")

    async def _info(self, request: web.Request) -> web.Response:
        return _ok(
            {
                "computer_id": "fake-mac",
                "os_version": "14.5",
                "server_version": "1.9.9",
                "private_api": self.private_api,
                "proxy_service": "Dynamic DNS",
                "helper_connected": self.private_api,
                "detected_icloud": ME,
                "detected_imessage": ME,
            },
            "Successfully fetched server info",
        )

    async def _list_webhooks(self, request: web.Request) -> web.Response:
        return _ok(list(self.webhooks.values()), "Successfully fetched webhooks!")

    async def _add_webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        url, events = body.get("url"), body.get("events")
        if not isinstance(url, str) or not isinstance(events, list):
            return _bad_request("url and events are required")
        hook_id = next(self._webhook_ids)
        hook = {"id": hook_id, "url": url, "events": events}
        async with self._changed:
            self.webhooks[hook_id] = hook
            self._changed.notify_all()
        return _ok(hook, "Successfully created webhook!")

    async def _delete_webhook(self, request: web.Request) -> web.Response:
        if self.webhooks.pop(int(request.match_info["id"]), None) is None:
            return _error(404, "The requested resource was not found", "Database Error", "gone")
        return _ok(None, "Successfully deleted webhook!")

    def _check_send(
        self, chat: Any, temp_guid: Any, method: Any, selected: Any
    ) -> tuple[str | None, web.Response | None]:
        """Apply the server's send validation; return the method used or an error."""
        if not isinstance(chat, str) or not chat:
            return None, _bad_request("chatGuid is required")
        method = method or "apple-script"
        if selected:
            method = "private-api"
        if method == "apple-script" and not temp_guid:
            return None, _bad_request("A 'tempGuid' is required when sending via AppleScript")
        if method == "private-api" and not self.private_api:
            return None, _bad_request("iMessage Private API is not enabled!")
        if ";" not in chat:
            return None, _bad_request("Chat does not exist")
        return str(method), None

    def _own_message(self, chat: str, text: str) -> dict[str, Any]:
        message = self.message(text, chat=chat, from_me=True)
        self.history.append(message)
        return message

    async def _send_text(self, request: web.Request) -> web.Response:
        body = await request.json()
        chat, text = body.get("chatGuid"), body.get("message")
        method, error = self._check_send(
            chat, body.get("tempGuid"), body.get("method"), body.get("selectedMessageGuid")
        )
        if error is not None:
            return error
        if not isinstance(text, str) or not text:
            return _bad_request("A 'message' is required")
        sent = Sent(
            "message/text",
            chat,
            text=text,
            temp_guid=body.get("tempGuid"),
            method=method,
            selected_guid=body.get("selectedMessageGuid"),
        )
        await self._record(sent)
        return _ok(self._own_message(chat, text), "Message sent!")

    async def _send_attachment(self, request: web.Request) -> web.Response:
        fields: dict[str, str] = {}
        file_name, data = None, b""
        async for part in await request.multipart():
            if not isinstance(part, aiohttp.BodyPartReader):
                continue
            if part.name == "attachment":
                file_name, data = part.filename, await part.read()
            elif part.name:
                fields[part.name] = await part.text()
        chat = fields.get("chatGuid")
        method, error = self._check_send(
            chat, fields.get("tempGuid"), fields.get("method"), fields.get("selectedMessageGuid")
        )
        if error is not None:
            return error
        if not data or not fields.get("name"):
            return _bad_request("Attachment not provided or was empty!")
        assert chat is not None
        sent = Sent(
            "message/attachment",
            chat,
            temp_guid=fields.get("tempGuid"),
            method=method,
            file_name=fields["name"] or file_name,
            file_bytes=len(data),
        )
        await self._record(sent)
        return _ok(self._own_message(chat, "\ufffc"), "Attachment sent!")

    async def _query(self, request: web.Request) -> web.Response:
        body = await request.json()
        after = int(body.get("after") or 0)
        limit = int(body.get("limit") or 100)
        found = [m for m in self.history if m["dateCreated"] > after]
        found.sort(key=lambda m: m["dateCreated"], reverse=body.get("sort") != "ASC")
        return _ok(found[:limit], "Successfully fetched messages!")

    async def _download(self, request: web.Request) -> web.StreamResponse:
        data = self.attachments.get(request.match_info["guid"])
        if data is None:
            return _error(404, "The requested resource was not found", "Database Error", "none")
        return web.Response(body=data, content_type="application/octet-stream")

    async def _typing(self, request: web.Request) -> web.Response:
        if not self.private_api:
            return _bad_request("iMessage Private API is not enabled!")
        await self._record(Sent("chat/typing", request.match_info["guid"]))
        return _ok(None, "Successfully started typing!")
