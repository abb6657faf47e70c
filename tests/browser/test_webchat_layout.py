"""WebChat's layout in a real browser at desktop and phone sizes, against a scripted gateway."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import watched_tab
from tests.browser.screenshot import DESKTOP, PHONE
from tests.browser.scripted_gateway import ScriptedGateway, message

SECRET = "scripted-secret-42"
# Far more than any window holds: the banner must scroll inside itself, not push the page.
LONG_ERROR = " ".join(["the agent backend refused the request and said why at length"] * 60)


def inside(box: dict[str, float] | None, viewport: dict[str, int]) -> bool:
    """Return whether a bounding box lies wholly inside the viewport."""
    assert box is not None, "the element is not rendered"
    return (
        box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= viewport["width"]
        and box["y"] + box["height"] <= viewport["height"]
    )


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_a_long_error_banner_leaves_the_composer_inside_the_window(
    browser: Browser, scripted: ScriptedGateway, viewport: dict[str, int]
) -> None:
    scripted.history = [message("user" if n % 2 else "assistant", f"line {n}") for n in range(60)]
    scripted.failures["chat.send"] = {"code": "UNAVAILABLE", "message": LONG_ERROR}
    with watched_tab(browser, viewport=viewport) as page:
        page.goto(f"http://127.0.0.1:{scripted.port}/#token={SECRET}")
        expect(page.locator("#messages .message")).to_have_count(60)
        box = page.get_by_label("Message")
        box.fill("hello")
        box.press("Enter")
        banner = page.get_by_role("alert")
        expect(banner).to_contain_text("Not sent: the agent backend refused")
        assert inside(page.locator("#composer").bounding_box(), viewport)
        assert inside(page.get_by_role("button", name="Send").bounding_box(), viewport)
        # The banner sits in the flow above the transcript, which scrolls on its own.
        banner_box, log_box = banner.bounding_box(), page.locator("#messages").bounding_box()
        assert banner_box is not None and log_box is not None
        assert banner_box["y"] + banner_box["height"] <= log_box["y"]
        log = page.locator("#messages")
        assert log.evaluate("(element) => element.scrollHeight > element.clientHeight")
