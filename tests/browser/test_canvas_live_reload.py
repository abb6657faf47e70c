"""Canvas live reload in a real browser: headless Chromium, a real `clawgate gateway run`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.harness import TOKEN, Daemon
from tests.e2e.test_cli import free_port


@dataclass
class CanvasDaemon:
    """A gateway subprocess with its canvas host on, and the canvas root it serves."""

    daemon: Daemon
    port: int
    root: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def write_page(self, relative: str, heading: str) -> None:
        page = self.root / relative
        page.parent.mkdir(parents=True, exist_ok=True)
        html = f"<!doctype html><html><head></head><body><h1>{heading}</h1></body></html>"
        # Written whole and renamed in, as editors and agents do: never half a page.
        draft = page.with_name(f".{page.name}.tmp")
        draft.write_text(html, encoding="utf-8")
        draft.replace(page)


@pytest.fixture(scope="module")
def canvas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CanvasDaemon]:
    """One gateway for the module, its canvas on a free port, root under its home."""
    home = tmp_path_factory.mktemp("canvas") / "home"
    home.mkdir(mode=0o700)
    port = free_port()
    config = home / "config.toml"
    config.write_text(f"[canvas]\nenabled = true\nport = {port}\n", encoding="utf-8")
    config.chmod(0o600)
    daemon = Daemon(home, free_port())
    daemon.start()
    yield CanvasDaemon(daemon, port, home / "canvas")
    daemon.stop()


def open_live(page: Page, url: str) -> None:
    """Open a canvas page and wait until its live-reload socket is admitted."""
    page.goto(url)
    expect(page.locator("html")).to_have_attribute("data-clawgate-live", "ready")


def test_a_page_reloads_itself_when_its_file_is_written(page: Page, canvas: CanvasDaemon) -> None:
    canvas.write_page("main/index.html", "first")
    open_live(page, canvas.url(f"/main/index.html#clawgate-token={TOKEN}"))
    expect(page.locator("h1")).to_have_text("first")
    page.evaluate("() => { window.beforeReload = true; }")
    canvas.write_page("main/index.html", "second")
    expect(page.locator("h1")).to_have_text("second")
    assert page.evaluate("() => window.beforeReload === undefined")


def test_the_token_leaves_the_address_bar_and_the_pages_own_fragment_stays(
    page: Page, canvas: CanvasDaemon
) -> None:
    canvas.write_page("main/frag.html", "fragment")
    open_live(page, canvas.url(f"/main/frag.html#chart-2&clawgate-token={TOKEN}"))
    assert page.url == canvas.url("/main/frag.html#chart-2")


def test_a_page_without_the_token_is_refused_live_reload(
    page: Page, browser: Browser, canvas: CanvasDaemon
) -> None:
    canvas.write_page("main/refused.html", "static")
    page.goto(canvas.url("/main/refused.html"))
    expect(page.locator("html")).to_have_attribute("data-clawgate-live", "refused")
    page.evaluate("() => { window.beforeReload = true; }")
    # A page that is admitted proves the notice went out; the refused one stays as it was.
    witness = browser.new_context().new_page()
    try:
        open_live(witness, canvas.url(f"/main/refused.html#clawgate-token={TOKEN}"))
        canvas.write_page("main/refused.html", "changed")
        expect(witness.locator("h1")).to_have_text("changed")
    finally:
        witness.context.close()
    expect(page.locator("h1")).to_have_text("static")
    assert page.evaluate("() => window.beforeReload === true")
