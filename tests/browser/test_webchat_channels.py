"""The WebChat Channels view in a real browser: account states, and linking WhatsApp by QR.

WhatsApp cannot be reached from here, so the gateway runs in a thread of this process with
the stand-in of tests/fakes/whatsapp_web.py in place of neonize's client (Playwright's sync
API owns the main thread); everything else is the real gateway serving the real page.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from clawgate.gateway.server import GatewayServer
from clawgate.gateway.settings import GatewaySettings
from clawgate.protocol.auth import AuthMode, SharedSecretAuth
from tests.fakes.whatsapp_web import FakeWhatsAppWeb
from tests.integration.channels.harness import channel_gateway


class ThreadedGateway:
    """A real gateway on its own event loop in a thread, with personal WhatsApp configured."""

    def __init__(self, home: Path, world: FakeWhatsAppWeb) -> None:
        self.home = home
        self.world = world
        self.token = secrets.token_urlsafe(32)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: GatewayServer | None = None

    @property
    def link(self) -> str:
        """The WebChat URL with the token fragment, as `gateway run` prints it."""
        assert self.server is not None
        return f"{self.server.url.replace('ws://', 'http://')}#token={self.token}"

    def start(self) -> None:
        self.thread.start()
        self.run(self._start)

    async def _start(self) -> None:
        async def factory(**overrides: Any) -> Any:
            settings = GatewaySettings(
                home=self.home,
                auth=SharedSecretAuth(AuthMode.TOKEN, self.token),
                port=0,
                log_file=self.home / "gateway.log",
                state_db=self.home / "state.db",
                **overrides,
            )
            self.server = GatewayServer(settings)
            await self.server.start()
            return self.server

        await channel_gateway(factory, {"whatsapp": {"mode": "web"}}, home=self.home)

    def run(self, action: Callable[[], Any]) -> Any:
        """Run `action` on the gateway's loop (awaited when it is a coroutine function)."""

        async def call() -> Any:
            result = action()
            return await result if asyncio.iscoroutine(result) else result

        done: Future[Any] = asyncio.run_coroutine_threadsafe(call(), self.loop)
        return done.result(timeout=30)

    def stop(self) -> None:
        if self.server is not None:
            self.run(self.server.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture
def whatsapp(monkeypatch: pytest.MonkeyPatch) -> FakeWhatsAppWeb:
    world = FakeWhatsAppWeb()
    monkeypatch.setattr("clawgate.channels.whatsapp_web.NewAClient", world.client_class())
    return world


@pytest.fixture
def gateway(tmp_path: Path, whatsapp: FakeWhatsAppWeb) -> Iterator[ThreadedGateway]:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    running = ThreadedGateway(home, whatsapp)
    running.start()
    yield running
    running.stop()


def open_channels(page: Page, gateway: ThreadedGateway) -> None:
    page.goto(gateway.link)
    expect(page.locator("#status")).to_have_text("Connected")
    page.get_by_role("button", name="Channels", exact=True).click()
    expect(page.get_by_role("heading", name="Channels")).to_be_visible()


def qr_source(page: Page) -> str:
    image = page.get_by_role("img", name="QR code to link whatsapp")
    expect(image).to_be_visible()
    source = image.get_attribute("src")
    assert source is not None and source.startswith("data:image/png;base64,")
    return source


def test_the_page_shows_each_qr_code_until_the_phone_scans_one(
    page: Page, gateway: ThreadedGateway, whatsapp: FakeWhatsAppWeb
) -> None:
    open_channels(page, gateway)
    row = page.get_by_role("row", name="whatsapp")
    gateway.run(lambda: whatsapp.show_qr("2@first-code"))
    expect(row).to_contain_text("not linked yet")
    row.get_by_role("button", name="Link whatsapp").click()
    first = qr_source(page)
    gateway.run(lambda: whatsapp.show_qr("2@second-code"))
    expect(page.get_by_role("img", name="QR code to link whatsapp")).not_to_have_attribute(
        "src", first
    )
    gateway.run(whatsapp.scan)
    expect(page.locator("#channels-note")).to_have_text("whatsapp is linked.")
    expect(page.get_by_role("img", name="QR code to link whatsapp")).to_be_hidden()
    expect(row).to_contain_text("connected")
    expect(row.get_by_role("button", name="Link whatsapp")).to_have_count(0)


def test_stopping_hides_the_code_and_leaves_the_account_unlinked(
    page: Page, gateway: ThreadedGateway, whatsapp: FakeWhatsAppWeb
) -> None:
    open_channels(page, gateway)
    gateway.run(lambda: whatsapp.show_qr("2@code"))
    page.get_by_role("button", name="Link whatsapp").click()
    qr_source(page)
    page.get_by_role("button", name="Stop linking").click()
    expect(page.locator("#link")).to_be_hidden()
    expect(page.locator("#channels-note")).to_have_text("Linking stopped.")
    expect(page.get_by_role("row", name="whatsapp")).to_contain_text("not linked yet")
