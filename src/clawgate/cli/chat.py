"""`clawgate chat`, `agent`, `dashboard`: talk to the agent from the terminal, open WebChat.

`chat` sends each message with `chat.send` and prints the reply as its `chat` deltas arrive,
ending with the final text. Without a MESSAGE it reads stdin line by line (a `>>> ` prompt
on a terminal); Ctrl-D ends the chat, Ctrl-C aborts the current run with `chat.abort` and
keeps the session.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from ..protocol.auth import AuthMode
from ._common import default_token, default_url, err_console, fail, load_paths_and_config
from .call import TlsOption, TokenOption, UrlOption, with_client
from .chat_stream import ReplyPrinter, RunEnded

if TYPE_CHECKING:
    from ..client import EventStream, GatewayClient

__all__ = ["agent", "chat", "dashboard"]

SessionOption = Annotated[
    str, typer.Option("--session", help="Session key, e.g. main or agent:main:work.")
]
PROMPT = ">>> "
EXIT_INTERRUPTED = 130  # what a shell reports for a command ended by Ctrl-C


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()  # each piece as it arrives, also into a pipe


def _json_line(name: str, payload: Any) -> None:
    _write(orjson.dumps({"event": name, "payload": payload}).decode() + "\n")


class _Turns:
    """One chat connection: sends messages, prints replies, aborts the run on Ctrl-C."""

    def __init__(self, client: GatewayClient, session_key: str, json_lines: bool) -> None:
        self._client = client
        self._session_key = session_key
        self._json = json_lines
        self._running = False
        self._run_id: str | None = None

    def interrupt(self) -> bool:
        """Abort the run in progress; return False when there is none."""
        if not self._running:
            return False
        params: dict[str, Any] = {"sessionKey": self._session_key}
        if self._run_id is not None:
            params["runId"] = self._run_id
        task = asyncio.get_running_loop().create_task(self._client.call("chat.abort", params))
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        return True

    async def send(self, message: str) -> RunEnded:
        """Send one message and print its reply until the run ends."""
        self._running, self._run_id = True, None
        try:
            async with self._client.events() as events:
                result = await self._client.call(
                    "chat.send",
                    {
                        "sessionKey": self._session_key,
                        "message": message,
                        "idempotencyKey": str(uuid.uuid4()),
                    },
                )
                self._run_id = str(result["runId"])
                return await self._follow(events, self._run_id)
        finally:
            self._running, self._run_id = False, None

    async def _follow(self, events: EventStream, run_id: str) -> RunEnded:
        printer = ReplyPrinter()
        async for event in events:
            payload = event.payload if isinstance(event.payload, dict) else {}
            if event.event not in ("chat", "agent") or payload.get("runId") != run_id:
                continue
            if self._json:
                _json_line(event.event, payload)
            if event.event != "chat":
                continue
            piece = printer.feed(payload)
            if not self._json and piece:
                _write(piece)
            if printer.ended is not None:
                return printer.ended
        fail("the gateway closed the connection before the reply ended", 2)


def _report(ended: RunEnded) -> None:
    if ended.state == "aborted":
        err_console.print("[yellow](aborted)[/]", highlight=False)
    elif ended.state == "error":
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/] {escape(ended.error or '')}", highlight=False)


def _stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Read stdin on a daemon thread into a queue; None marks the end (Ctrl-D)."""
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\r\n"))
        loop.call_soon_threadsafe(lines.put_nowait, None)

    # A daemon thread: a blocked read never keeps the process alive after the chat ends.
    threading.Thread(target=read, name="stdin", daemon=True).start()
    return lines


async def _converse(turns: _Turns, message: str | None) -> int:
    """Run one message, or every stdin line; return the exit code."""
    loop = asyncio.get_running_loop()
    interactive = message is None and sys.stdin.isatty()
    stop = asyncio.Event()

    def on_interrupt() -> None:
        if turns.interrupt():
            return
        if interactive:
            _write("\n(press Ctrl-D to end the chat)\n" + PROMPT)
        else:
            stop.set()

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        if message is not None:
            ended = await turns.send(message)
            _report(ended)
            return {"final": 0, "aborted": EXIT_INTERRUPTED}.get(ended.state, 1)
        lines = _stdin_lines(loop)
        while True:
            if interactive:
                _write(PROMPT)
            line = await _next_line(lines, stop)
            if line is None:
                if interactive:
                    _write("\n")
                return EXIT_INTERRUPTED if stop.is_set() else 0
            if line.strip():
                _report(await turns.send(line))
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def _next_line(lines: asyncio.Queue[str | None], stop: asyncio.Event) -> str | None:
    get = asyncio.ensure_future(lines.get())
    stopped = asyncio.ensure_future(stop.wait())
    done, pending = await asyncio.wait({get, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return get.result() if get in done else None


def chat(
    message: Annotated[
        str | None, typer.Argument(help="What to say; without it, read lines from stdin.")
    ] = None,
    session: SessionOption = "main",
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the run's events as JSON lines.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    tls_fingerprint: TlsOption = None,
) -> None:
    """Chat with the agent: stream the reply as it is written (Ctrl-C aborts the run)."""
    if message is not None and not message.strip():
        fail("the message is empty; say something, or leave it out to type lines", 2)

    async def action(client: GatewayClient) -> int:
        return await _converse(_Turns(client, session, json_output), message)

    code = with_client(url, token, action, tls_fingerprint)
    if code:
        raise typer.Exit(code)


def agent(
    message: Annotated[str, typer.Argument(help="What to ask the agent.")],
    session: SessionOption = "main",
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the run and print its final text.")
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print JSON lines: the run's events, then its outcome."),
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    tls_fingerprint: TlsOption = None,
) -> None:
    """Start an agent run; with --wait, print its final text."""
    params = {"message": message, "sessionKey": session, "idempotencyKey": str(uuid.uuid4())}

    async def action(client: GatewayClient) -> tuple[dict[str, Any], Any]:
        async with client.events() as events:
            accepted, final = await client.call_streaming("agent", params)
            if not wait:
                final.cancel()
                return accepted, None
            if json_output:
                await _echo_events(events, str(accepted["runId"]))
            return accepted, (await final).result()

    accepted, outcome = with_client(url, token, action, tls_fingerprint)
    if outcome is None:
        if json_output:
            _json_line("accepted", accepted)
            return
        run_id = accepted["runId"]
        _write(f"run {run_id} started; wait for it with `clawgate agent ... --wait`, or\n")
        _write(f'  clawgate call agent.wait --params \'{{"runId": "{run_id}"}}\'\n')
        return
    if json_output:
        _json_line("final", outcome)
        return
    result = outcome.get("result") or {}
    _write("\n".join(item.get("text", "") for item in result.get("payloads", [])) + "\n")


async def _echo_events(events: EventStream, run_id: str) -> None:
    """Print the run's `agent` and `chat` events as JSON lines until its terminal `chat`."""
    async for event in events:
        payload = event.payload if isinstance(event.payload, dict) else {}
        if event.event not in ("chat", "agent") or payload.get("runId") != run_id:
            continue
        _json_line(event.event, payload)
        if event.event == "chat" and payload.get("state") != "delta":
            return


def dashboard(
    open_browser: Annotated[
        bool, typer.Option("--open", help="Also open the link in the default browser.")
    ] = False,
) -> None:
    """Print the WebChat link (with the token, so the page logs in at once)."""
    from urllib.parse import quote

    _, config = load_paths_and_config()
    link = default_url(config).replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    mode = config.gateway.auth.mode
    secret = default_token(config)
    if mode is AuthMode.TOKEN and secret:
        # The fragment never leaves the browser: it is not sent in any HTTP request.
        link += f"#token={quote(secret, safe='')}"
    _write(link + "\n")
    if mode is AuthMode.PASSWORD:
        err_console.print("the page asks for the gateway password", highlight=False)
    elif mode is AuthMode.TOKEN and not secret:
        err_console.print(
            "no token in config.toml or CLAWGATE_GATEWAY_TOKEN: the page will ask for it",
            highlight=False,
        )
    if open_browser:
        import webbrowser

        if not webbrowser.open(link):
            fail("no browser could be opened here; copy the link above into one", 1)
