"""Fixtures for the browser tests: one headless Chromium per module, a fresh tab per test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.harness import launch_chromium
from tests.browser.scripted_gateway import ScriptedGateway


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@contextmanager
def watched_tab(browser: Browser, **context_options: Any) -> Iterator[Page]:
    """A fresh tab (own sessionStorage) that fails the test on a script error or CSP block."""
    context = browser.new_context(**context_options)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    tab.on(
        "console",
        lambda message: (
            problems.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    expect.set_options(timeout=10_000)
    yield tab
    context.close()
    assert problems == []


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab that fails the test on a script error or CSP block."""
    with watched_tab(browser) as tab:
        yield tab


@pytest.fixture
def scripted() -> Iterator[ScriptedGateway]:
    """A stand-in gateway serving the real page on a loopback port."""
    gateway = ScriptedGateway()
    gateway.start()
    yield gateway
    gateway.stop()
