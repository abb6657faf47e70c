"""OpenClaw's real Control UI (the npm bundle) against a real clawgate, in Debian's Chromium.

The bundle comes from `make openclaw` (`tests/tools/install_openclaw.sh`, pinned, cached in
`.tools/openclaw`); without it these tests are skipped. Every WebSocket frame is logged; the
log is written to `control-ui-frames.json` in the test's tmp_path (pytest keeps the folders of
failed runs), so a failure can be read frame by frame.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import pytest
from playwright.sync_api import Page, WebSocket, expect

from clawgate.protocol.approval_history import ApprovalOutcome, ClosedApproval, ResolverKind
from clawgate.protocol.limits import APPROVAL_HISTORY_KEEP
from clawgate.store import StateStore, approvals_repo
from tests.browser.harness import ECHO_DELAY_MS, TOKEN, Daemon
from tests.e2e.test_cli import free_port

REPO: Final = Path(__file__).resolve().parents[2]
BUNDLE: Final = REPO / ".tools" / "openclaw" / "node_modules" / "openclaw" / "dist" / "control-ui"
# The pages whose capability clawgate has (issue 21, point 4).
PAGES: Final = [
    "chat",
    "sessions",
    "agents",
    "dashboards",
    "activity",
    "plugins",
    "logs",
    "debug",
    "settings/connection",
    "settings/advanced",
    "settings/devices",
    "settings/appearance",
    "usage",
    "systems",
    "settings/channels",
    "automations",
    "settings/approvals",
]
# The pages of the channels, nodes, cron, plugins and exec-approval capabilities: no method
# they call, advertised or not, may be unknown (the UI calls some without checking).
COMPLETE: Final = frozenset(
    {"systems", "settings/channels", "automations", "plugins", "settings/approvals"}
)
# Error text the pages show when a call failed.
BANNERS: Final = (
    "unknown method: chat",
    "unknown method: sessions",
    "params: at ",
    "returned an invalid",
)
# The shell's calls (issue 21, point 3): each is sent, advertised and answered without error.
SHELL: Final = (
    "update.status",
    "question.list",
    "exec.approval.list",
    "plugin.approval.list",
    "openclaw.approval.list",
    "sessions.observer.visibility",
    "themes.list",
)
# More requests of one method during one page visit than this is a retry storm.
STORM: Final = 40
# The UI's own timers poll every few seconds; this long without a request means it settled.
QUIET_S: Final = 2.0
# Polled on a timer as long as their page is open (logs every ~2 s): not part of settling.
POLLED: Final = frozenset({"logs.tail", "system.info"})

pytestmark = pytest.mark.skipif(
    not (BUNDLE / "index.html").is_file(),
    reason="OpenClaw's Control UI is not installed: `make openclaw` installs it",
)


class FrameLog:
    """Every frame the page's WebSockets sent and received, decoded."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, dict[str, Any]]] = []

    def attach(self, socket: WebSocket) -> None:
        """Record the frames of one socket."""
        socket.on("framesent", lambda data: self._add("sent", data))
        socket.on("framereceived", lambda data: self._add("received", data))

    def _add(self, direction: str, data: str | bytes) -> None:
        if isinstance(data, str):
            self.frames.append((direction, json.loads(data)))

    def mark(self) -> int:
        """Return a position: frames after it belong to what happens next."""
        return len(self.frames)

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Return the requests sent after `since`."""
        return [f for d, f in self.frames[since:] if d == "sent" and f.get("type") == "req"]

    def failures(self, since: int = 0) -> list[tuple[str, str]]:
        """Return (method, message) of every error response after `since`."""
        methods = {r["id"]: r["method"] for r in self.requests()}
        return [
            (methods.get(f["id"], "?"), f["error"]["message"])
            for d, f in self.frames[since:]
            if d == "received" and f.get("type") == "res" and not f.get("ok")
        ]

    def answered(self, since: int = 0) -> set[str]:
        """Return the methods that got a successful response after `since`."""
        methods = {r["id"]: r["method"] for r in self.requests()}
        return {
            methods.get(f["id"], "?")
            for d, f in self.frames[since:]
            if d == "received" and f.get("type") == "res" and f.get("ok")
        }

    def advertised(self) -> set[str]:
        """Return the methods the last `hello-ok` listed."""
        for direction, frame in reversed(self.frames):
            payload = frame.get("payload")
            hello = isinstance(payload, dict) and payload.get("type") == "hello-ok"
            if direction == "received" and hello:
                return set(payload["features"]["methods"])
        return set()

    def wait_for_sent(self, page: Page, methods: set[str], timeout_s: float = 60.0) -> None:
        """Wait until the page has sent every one of `methods` (a page load is slow under load)."""
        deadline = time.monotonic() + timeout_s
        while methods - {r["method"] for r in self.requests()} and time.monotonic() < deadline:
            page.wait_for_timeout(250)

    def wait_until_quiet(self, page: Page, timeout_s: float = 45.0) -> None:
        """Wait until the page is connected and sent no unpolled request for QUIET_S seconds."""
        deadline = time.monotonic() + timeout_s
        seen, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            count = sum(r["method"] not in POLLED for r in self.requests())
            if count != seen:
                seen, quiet_since = count, time.monotonic()
            elif self.advertised() and time.monotonic() - quiet_since >= QUIET_S:
                return
            page.wait_for_timeout(250)
        raise AssertionError("the Control UI never settled: see control-ui-frames.json")


def closed_approval(outcome: ApprovalOutcome, at_ms: int) -> ClosedApproval:
    """A closed approval of `echo <outcome>` on a node, closed at `at_ms`."""
    by_operator = outcome not in (ApprovalOutcome.EXPIRED, ApprovalOutcome.CANCELLED)
    return ClosedApproval(
        id=f"approval-{outcome.value}",
        node_id="node-1",
        command=f"echo {outcome.value}",
        requested_by="cli",
        outcome=outcome,
        resolver_kind=ResolverKind.RUNTIME if by_operator else ResolverKind.SYSTEM,
        resolver_id="cli" if by_operator else None,
        resolved_by="cli" if by_operator else None,
        created_at_ms=at_ms - 1_000,
        expires_at_ms=at_ms + 119_000,
        resolved_at_ms=at_ms,
    )


async def record_history(state_db: Path) -> None:
    """Write one closed exec approval of each outcome into a home's state.db."""
    store = StateStore(state_db)
    await store.open()
    try:
        for index, outcome in enumerate(ApprovalOutcome):
            closed = closed_approval(outcome, 1_796_000_000_000 + index)
            await store.write(
                lambda conn, c=closed: approvals_repo.record_closed(conn, c, APPROVAL_HISTORY_KEEP)
            )
    finally:
        await store.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One gateway serving the Control UI bundle at /control/."""
    home = tmp_path_factory.mktemp("control-ui") / "home"
    home.mkdir(mode=0o700)
    config = home / "config.toml"
    config.write_text(
        f'[gateway]\ncontrol_ui_root = "{BUNDLE}"\n\n'
        f'[agent]\nbackend = "echo"\necho_delay_ms = {ECHO_DELAY_MS}\n'
    )
    config.chmod(0o600)
    # Closed approvals for the approvals page: the UI refuses a history page it cannot read.
    # (On a thread of its own: the browser fixtures keep an event loop running on this one.)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, record_history(home / "state.db")).result()
    running = Daemon(home, free_port())
    running.start()
    yield running
    running.stop()


@pytest.fixture
def frames(page: Page, tmp_path: Path) -> Iterator[FrameLog]:
    """The page's frame log, written out after the test (kept for failed runs)."""
    log = FrameLog()
    page.on("websocket", log.attach)
    yield log
    (tmp_path / "control-ui-frames.json").write_text(json.dumps(log.frames, indent=1))


def control_url(daemon: Daemon, route: str) -> str:
    """The Control UI's URL for a client-side route."""
    return f"http://127.0.0.1:{daemon.port}/control/{route}"


def open_ui(page: Page, daemon: Daemon, frames: FrameLog) -> None:
    """Open the chat view with the token link and wait until it is connected."""
    page.goto(control_url(daemon, "chat") + f"#token={TOKEN}")
    expect(page.get_by_placeholder("Message clawgate")).to_be_visible(timeout=45_000)
    frames.wait_until_quiet(page)


def test_a_message_typed_in_the_composer_gets_the_streamed_reply(
    page: Page, daemon: Daemon, frames: FrameLog
) -> None:
    open_ui(page, daemon, frames)
    text = "hello from the control ui"
    box = page.get_by_placeholder("Message clawgate")
    box.fill(text)
    box.press("Enter")
    # The echo agent answers with the same words: the question and the reply (a live region
    # may repeat the reply for screen readers).
    expect(page.get_by_text(text, exact=True).nth(1)).to_be_visible(timeout=45_000)
    sent = [r for r in frames.requests() if r["method"] == "chat.send"]
    assert [r["params"]["message"] for r in sent] == [text]
    advertised = frames.advertised()
    assert [f for f in frames.failures() if f[0] in advertised] == []

    # The same conversation is in clawgate's own WebChat page (its main session).
    page.goto(f"http://127.0.0.1:{daemon.port}/#token={TOKEN}")
    expect(page.locator("#status")).to_have_text("Connected", timeout=30_000)
    expect(page.locator("#messages").get_by_text(text, exact=True)).to_have_count(2, timeout=30_000)


def test_the_shells_calls_are_advertised_and_answered(
    page: Page, daemon: Daemon, frames: FrameLog
) -> None:
    open_ui(page, daemon, frames)
    # The theme catalog is fetched where themes are chosen.
    page.goto(control_url(daemon, "settings/appearance"))
    frames.wait_for_sent(page, set(SHELL))
    frames.wait_until_quiet(page)
    sent = {r["method"] for r in frames.requests()}
    assert set(SHELL) - sent == set()
    assert set(SHELL) - frames.advertised() == set()
    assert set(SHELL) - frames.answered() == set()


# Seventeen pages, each settling for QUIET_S or more: past the default 180 s on a loaded machine.
@pytest.mark.timeout(390)
def test_every_page_clawgate_can_serve_renders_without_an_error(
    page: Page, daemon: Daemon, frames: FrameLog
) -> None:
    open_ui(page, daemon, frames)
    for route in PAGES:
        start = frames.mark()
        page.goto(control_url(daemon, route))
        frames.wait_until_quiet(page)
        advertised = frames.advertised()
        failed = [(m, msg) for m, msg in frames.failures(start) if m in advertised]
        assert failed == [], f"{route}: advertised methods failed: {failed}"
        counts = Counter(r["method"] for r in frames.requests(start))
        storms = {m: n for m, n in counts.items() if n > STORM}
        assert storms == {}, f"{route}: retry storm {storms}"
        for text in (*BANNERS, *(("unknown method:",) if route in COMPLETE else ())):
            assert page.get_by_text(text).count() == 0, f"{route}: shows {text!r}"


def test_the_approvals_page_lists_the_closed_approvals(
    page: Page, daemon: Daemon, frames: FrameLog
) -> None:
    open_ui(page, daemon, frames)
    page.goto(control_url(daemon, "settings/approvals"))
    for outcome in ApprovalOutcome:
        expect(page.get_by_text(f"echo {outcome.value}", exact=True)).to_be_visible(timeout=30_000)
    assert page.get_by_text("returned an invalid").count() == 0
