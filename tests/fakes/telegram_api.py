"""A local stand-in for the Telegram Bot API: the real HTTP API, its shapes and its errors.

Served on loopback as `http://127.0.0.1:PORT`; `[channels.telegram] api_base` points at it
and clients call `/bot<token>/<method>` exactly as on api.telegram.org (SDKs send
multipart forms; JSON bodies and query strings work too). Implemented: `getMe`,
`getUpdates` (long polling with `offset`/`timeout`/`limit`; a second concurrent poller
ends the first with 409), `sendMessage`, `editMessageText` (400 "message to edit not
found" for an unknown message, 400 "message is not modified" for the same text),
`sendChatAction`, `sendPhoto`, `sendDocument`,
`getFile` and `/file/bot<token>/<path>`, `setWebhook` (updates are then POSTed to the URL
with `X-Telegram-Bot-Api-Secret-Token` and retried until answered 200),
`deleteWebhook`, `getWebhookInfo`. Errors use the real shape
`{"ok": false, "error_code", "description", "parameters"?}`: 401 for an unknown token, 409
for polling while a webhook is set, 400 for empty or too long text, 429 with
`parameters.retry_after` when scripted.

A test plays the human with `user_says(...)` (it queues an update) and reads what the bot
sent with `wait_sent(...)`. `script(method, *behaviours)` makes the next calls of a method
misbehave: `"429"`, `"500"`, `"401"`, `"malformed"` (not JSON), `"hang"` (never answers),
`"drop"` (closes the connection without an answer).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["BOT_ID", "BOT_TOKEN", "BOT_USERNAME", "FakeTelegram", "Sent"]

BOT_ID = 777000111
BOT_TOKEN = f"{BOT_ID}:AAFakeTokenForTestsOnly_abcdefghijklmn"
BOT_USERNAME = "clawgate_test_bot"
MAX_TEXT = 4096


@dataclass
class Sent:
    """A message the bot sent (or a chat action)."""

    method: str
    chat_id: str
    message_id: int
    text: str = ""
    thread_id: int | None = None
    reply_to: int | None = None
    file_name: str | None = None
    file_bytes: int = 0


@dataclass
class _Webhook:
    url: str
    secret: str | None


@dataclass
class _Bot:
    token: str
    bot_id: int
    username: str
    updates: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    webhook: _Webhook | None = None
    poller: int = 0  # id of the newest getUpdates, so an older one can be told 409


class FakeTelegram:
    """A running stand-in; `api_base` goes into config."""

    def __init__(self) -> None:
        self.bots: dict[str, _Bot] = {}
        self.add_bot(BOT_TOKEN, BOT_ID, BOT_USERNAME)
        self.sent: list[Sent] = []
        self.calls: list[str] = []
        self.files: dict[str, bytes] = {}
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self._update_ids = itertools.count(100)
        self._message_ids = itertools.count(5000)
        self._sent_changed = asyncio.Condition()
        self._hanging: list[asyncio.Future[None]] = []
        self._deliveries: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.port = 0

    # -- life -----------------------------------------------------------------------

    def add_bot(self, token: str, bot_id: int, username: str) -> None:
        """Accept another bot token."""
        self.bots[token] = _Bot(token, bot_id, username)

    @property
    def api_base(self) -> str:
        """The server root: `/bot<token>/<method>` is appended by clients."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        """Listen on loopback (an ephemeral port, or `port` to come back on the same one)."""
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.*}", self._file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port or self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Stop listening (pending updates and sent messages are kept for a restart)."""
        for waiter in self._hanging:
            if not waiter.done():
                waiter.set_result(None)
        for task in list(self._deliveries):
            task.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def script(self, method: str, *behaviours: str) -> None:
        """Make the next calls of `method` misbehave, one behaviour per call."""
        self._scripts[method.lower()].extend(behaviours)

    # -- the human side -------------------------------------------------------------

    def user_says(
        self,
        text: str | None,
        *,
        user_id: int = 4242,
        first_name: str = "Alice",
        chat_id: int | None = None,
        chat_type: str = "private",
        title: str = "",
        thread_id: int | None = None,
        reply_to_bot: bool = False,
        entities: list[dict[str, Any]] | None = None,
        photo: bytes | None = None,
        document: tuple[str, bytes] | None = None,
        token: str = BOT_TOKEN,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue a message from a person to the bot; return the update."""
        bot = self.bots[token]
        chat: dict[str, Any] = {"id": chat_id if chat_id is not None else user_id}
        chat["type"] = chat_type
        if chat_type == "private":
            chat["first_name"] = first_name
        else:
            chat["title"] = title or "Group"
            if thread_id is not None:
                chat["is_forum"] = True
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": {"id": user_id, "is_bot": False, "first_name": first_name},
        }
        if text is not None:
            message["caption" if (photo or document) else "text"] = text
        if entities:
            message["entities"] = entities
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        if reply_to_bot:
            message["reply_to_message"] = {
                "message_id": 1,
                "date": int(time.time()),
                "chat": chat,
                "from": {"id": bot.bot_id, "is_bot": True, "first_name": "Bot"},
                "text": "earlier",
            }
        if photo is not None:
            file_id = self._store_file(photo, "photos/p.jpg")
            message["photo"] = [
                {
                    "file_id": file_id,
                    "file_unique_id": f"u{file_id}",
                    "width": 90,
                    "height": 90,
                    "file_size": len(photo),
                },
            ]
        if document is not None:
            name, data = document
            file_id = self._store_file(data, f"documents/{name}")
            message["document"] = {
                "file_id": file_id,
                "file_unique_id": f"u{file_id}",
                "file_name": name,
                "mime_type": "text/plain",
                "file_size": len(data),
            }
        update = {"update_id": next(self._update_ids), "message": message}
        if extra:
            update = {"update_id": update["update_id"], **extra}
        self.push(update, token)
        return update

    def mention(self, text: str) -> list[dict[str, Any]]:
        """Return the entities of an `@botname` mention at the start of `text`."""
        return [{"type": "mention", "offset": 0, "length": len(BOT_USERNAME) + 1}]

    def push(self, update: dict[str, Any], token: str = BOT_TOKEN) -> None:
        """Queue a raw update (any shape) for the bot."""
        bot = self.bots[token]
        bot.updates.append(update)
        if bot.webhook is not None:
            self._deliver_by_webhook(bot, update)
        asyncio.get_running_loop().create_task(self._notify(bot))

    def redeliver(self, update: dict[str, Any], token: str = BOT_TOKEN) -> None:
        """Queue an update again, as Telegram does when it was never confirmed."""
        self.push(update, token)

    async def _notify(self, bot: _Bot) -> None:
        async with bot.arrived:
            bot.arrived.notify_all()

    def _store_file(self, data: bytes, path: str) -> str:
        file_id = f"F{len(self.files) + 1}"
        self.files[file_id] = data
        self.files[path] = data
        self.files[f"path:{file_id}"] = path.encode()
        return file_id

    async def wait_sent(
        self,
        predicate: Callable[[Sent], bool] = lambda s: s.method == "sendMessage",
        *,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[Sent]:
        """Wait until `count` sent items match; return them in order."""
        async with asyncio.timeout(timeout), self._sent_changed:
            while True:
                found = [s for s in self.sent if predicate(s)]
                if len(found) >= count:
                    return found
                await self._sent_changed.wait()

    def messages_to(self, chat_id: int | str) -> list[Sent]:
        """Return the text messages sent to a chat."""
        return [s for s in self.sent if s.method == "sendMessage" and s.chat_id == str(chat_id)]

    # -- the API ------------------------------------------------------------------------

    @staticmethod
    def _error(status: int, description: str, **parameters: Any) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.method == "POST":
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    params[key] = (value.filename, value.file.read())
                else:
                    params[key] = value
        for key in ("reply_parameters", "allowed_updates"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        return params

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        name = method.lower()
        self.calls.append(method)
        bot = self.bots.get(request.match_info["token"])
        if bot is None:
            return self._error(401, "Unauthorized")
        behaviour = self._scripts[name].popleft() if self._scripts[name] else "ok"
        if behaviour == "429":
            return self._error(429, "Too Many Requests: retry after 1", retry_after=1)
        if behaviour == "500":
            return self._error(500, "Internal Server Error")
        if behaviour == "401":
            return self._error(401, "Unauthorized")
        if behaviour == "malformed":
            return web.Response(text="<html>502 Bad Gateway</html>{", content_type="text/html")
        if behaviour == "hang":
            waiter = asyncio.get_running_loop().create_future()
            self._hanging.append(waiter)
            await waiter
            return self._error(500, "Internal Server Error")
        if behaviour == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        params = await self._params(request)
        handler = getattr(self, f"_m_{name}", None)
        if handler is None:
            return self._error(404, "Not Found")
        response: web.StreamResponse = await handler(bot, params)
        return response

    async def _m_getme(self, bot: _Bot, params: dict[str, Any]) -> web.Response:
        return self._ok(
            {"id": bot.bot_id, "is_bot": True, "first_name": "Claw", "username": bot.username}
        )

    async def _m_getupdates(self, bot: _Bot, params: dict[str, Any]) -> web.Response:
        if bot.webhook is not None:
            return self._error(
                409,
                "Conflict: can't use getUpdates method while webhook is active;"
                " use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        bot.poller += 1
        me = bot.poller
        if offset:
            # Telegram forgets every update below the offset: it was confirmed.
            bot.updates = [u for u in bot.updates if u["update_id"] >= offset]
        deadline = asyncio.get_running_loop().time() + timeout
        async with bot.arrived:
            bot.arrived.notify_all()  # an older poller wakes up and is told 409
            while True:
                if bot.poller != me:
                    return self._error(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that"
                        " only one bot instance is running",
                    )
                ready = [u for u in bot.updates if u["update_id"] >= offset][:limit]
                left = deadline - asyncio.get_running_loop().time()
                if ready or left <= 0:
                    return self._ok(ready)
                try:
                    async with asyncio.timeout(left):
                        await bot.arrived.wait()
                except TimeoutError:
                    return self._ok([])

    def _message(self, bot: _Bot, chat_id: str, **fields: Any) -> dict[str, Any]:
        chat_type = "private" if not chat_id.startswith("-") else "supergroup"
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": int(chat_id), "type": chat_type},
            "from": {"id": bot.bot_id, "is_bot": True, "first_name": "Claw"},
        }
        message.update({k: v for k, v in fields.items() if v is not None})
        return message

    async def _record(self, sent: Sent) -> None:
        async with self._sent_changed:
            self.sent.append(sent)
            self._sent_changed.notify_all()

    @staticmethod
    def _thread(params: dict[str, Any]) -> int | None:
        value = params.get("message_thread_id")
        return int(value) if value not in (None, "") else None

    @staticmethod
    def _reply_to(params: dict[str, Any]) -> int | None:
        reply = params.get("reply_parameters")
        return int(reply["message_id"]) if isinstance(reply, dict) else None

    async def _m_sendmessage(self, bot: _Bot, params: dict[str, Any]) -> web.Response:
        chat_id = str(params.get("chat_id", ""))
        text = str(params.get("text", ""))
        if not chat_id:
            return self._error(400, "Bad Request: chat not found")
        if not text.strip():
            return self._error(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            return self._error(400, "Bad Request: message is too long")
        message = self._message(bot, chat_id, text=text)
        sent = Sent("sendMessage", chat_id, message["message_id"], text, self._thread(params))
        sent.reply_to = self._reply_to(params)
        await self._record(sent)
        return self._ok(message)

    async def _m_editmessagetext(self, bot: _Bot, params: dict[str, Any]) -> web.Response:
        chat_id, text = str(params.get("chat_id", "")), str(params.get("text", ""))
        message_id = int(params.get("message_id") or 0)
        known = [
            s
            for s in self.sent
            if s.method in ("sendMessage", "editMessageText")
            and (s.chat_id, s.message_id) == (chat_id, message_id)
        ]
        if not known:
            return self._error(400, "Bad Request: message to edit not found")
        if not text.strip():
            return self._error(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            return self._error(400, "Bad Request: message is too long")
        if known[-1].text == text:
            return self._error(
                400,
                "Bad Request: message is not modified: specified new message content and reply"
                " markup are exactly the same as a current content and reply markup of the"
                " message",
            )
        await self._record(Sent("editMessageText", chat_id, message_id, text, known[0].thread_id))
        message = self._message(bot, chat_id, text=text)
        message["message_id"] = message_id
        message["edit_date"] = int(time.time())
        return self._ok(message)

    async def _m_sendchataction(self, bot: _Bot, params: dict[str, Any]) -> web.Response:
        await self._record(Sent("sendChatAction", str(params["chat_id"]), 0, params["action"]))
        return self._ok(True)

    async def _send_file(self, bot: _Bot, params: dict[str, Any], kind: str) -> web.Response:
        chat_id = str(params.get("chat_id", ""))
        value = params.get(kind)
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value.removeprefix("attach://"))
        if isinstance(value, tuple):
            name, data = value
        elif isinstance(value, str) and value.startswith("http"):
            name, data = value.rsplit("/", 1)[-1], b""
        else:
            return self._error(400, f"Bad Request: there is no {kind} in the request")
        method = "sendPhoto" if kind == "photo" else "sendDocument"
        caption = params.get("caption")
        file_fields: dict[str, Any] = {"file_id": f"S{len(self.sent)}", "file_unique_id": "x"}
        message = self._message(
            bot,
            chat_id,
            caption=caption,
            **({"photo": [{**file_fields, "width": 1, "height": 1}]} if kind == "photo" else {}),
            **({"document": file_fields} if kind == "document" else {}),
        )
        sent = Sent(method, chat_id, message["message_id"], caption or "", self._thread(params))
        sent.file_name, sent.file_bytes = name, len(data)
        await self._record(sent)
        return self._ok(message)

    async def _m_sendphoto(self, bot: _Bot, params: dict[str, Any]) -> web.Response:
        return await self._send_file(bot, params, "photo")

    async def _m_senddocument(self, bot: _Bot, params: dict[str, Any]) -> web.Response:
        return await self._send_file(bot, params, "document")

    async def _m_getfile(self, bot: _Bot, params: dict[str, Any]) -> web.Response:
        file_id = str(params.get("file_id", ""))
        if file_id not in self.files:
            return self._error(400, "Bad Request: invalid file_id")
        path = self.files[f"path:{file_id}"].decode()
        return self._ok(
            {
                "file_id": file_id,
                "file_unique_id": f"u{file_id}",
                "file_size": len(self.files[file_id]),
                "file_path": path,
            }
        )

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] not in self.bots:
            return web.Response(status=401)
        data = self.files.get(request.match_info["path"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data)

    async def _m_setwebhook(self, bot: _Bot, params: dict[str, Any]) -> web.Response:
        url = str(params.get("url", ""))
        if not url:
            bot.webhook = None
            return self._ok(True)
        bot.webhook = _Webhook(url, params.get("secret_token"))
        for update in list(bot.updates):
            self._deliver_by_webhook(bot, update)
        return self._ok(True)

    async def _m_deletewebhook(self, bot: _Bot, params: dict[str, Any]) -> web.Response:
        bot.webhook = None
        return self._ok(True)

    async def _m_getwebhookinfo(self, bot: _Bot, params: dict[str, Any]) -> web.Response:
        info: dict[str, Any] = {
            "url": bot.webhook.url if bot.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(bot.updates) if bot.webhook else 0,
        }
        return self._ok(info)

    # -- webhook delivery ---------------------------------------------------------------

    def _deliver_by_webhook(self, bot: _Bot, update: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._post_update(bot, update))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _post_update(self, bot: _Bot, update: dict[str, Any]) -> None:
        """POST one update until answered 200, as Telegram retries a failing webhook."""
        for _ in range(50):
            hook = bot.webhook
            if hook is None or self._http is None:
                return
            headers = {"X-Telegram-Bot-Api-Secret-Token": hook.secret} if hook.secret else {}
            try:
                async with self._http.post(hook.url, json=update, headers=headers) as response:
                    if response.status == 200:
                        bot.updates = [u for u in bot.updates if u is not update]
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
