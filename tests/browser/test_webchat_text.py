"""WebChat's wording in a real browser (counts, short titles), against a scripted gateway."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.conftest import watched_tab
from tests.browser.screenshot import DESKTOP, PHONE
from tests.browser.scripted_gateway import ScriptedGateway, session

SECRET = "scripted-secret-42"


def open_page(page: Page, scripted: ScriptedGateway) -> None:
    page.goto(f"http://127.0.0.1:{scripted.port}/#token={SECRET}")
    expect(page.locator("#status")).to_have_text("Connected")


def test_the_plural_helper_puts_the_noun_in_the_right_number(
    page: Page, scripted: ScriptedGateway
) -> None:
    open_page(page, scripted)
    said = page.evaluate(
        """async () => {
          const { plural } = await import("/webchat/text.js");
          return [plural(0, "message"), plural(1, "message"), plural(2, "message"),
                  plural(1, "second"), plural(42, "second"), plural(1, "reply", "replies"),
                  plural(3, "reply", "replies")];
        }"""
    )
    assert said == [
        "0 messages",
        "1 message",
        "2 messages",
        "1 second",
        "42 seconds",
        "1 reply",
        "3 replies",
    ]


def test_the_chat_list_counts_one_message_and_two_messages(
    page: Page, scripted: ScriptedGateway
) -> None:
    scripted.sessions = [
        session("agent:main:one", "Short chat", 1),
        session("agent:main:two", "Longer chat", 2),
    ]
    open_page(page, scripted)
    expect(page.get_by_role("button", name="Short chat")).to_have_text("Short chat 1 message")
    expect(page.get_by_role("button", name="Longer chat")).to_have_text("Longer chat 2 messages")


LONG_TITLE = (
    "Notes from the quarterly planning meeting about the infrastructure migration"
    " and the budget review for next year"
)


def assert_cut_at_a_word(shown: str, whole: str) -> None:
    """`shown` is `whole` cut after a whole word, with an ellipsis, in 48 characters."""
    assert shown.endswith("…") and len(shown) <= 48, shown
    head = shown[:-1]
    assert whole.startswith(head) and whole[len(head)] == " ", shown


def fits(locator: Locator) -> bool:
    """Return whether the element's content stays inside its box, sideways."""
    return bool(locator.evaluate("(element) => element.scrollWidth <= element.clientWidth"))


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_a_long_title_ends_with_an_ellipsis_at_a_word_boundary(
    browser: Browser, scripted: ScriptedGateway, viewport: dict[str, int]
) -> None:
    scripted.sessions = [session("agent:main:long", LONG_TITLE, 2)]
    with watched_tab(browser, viewport=viewport) as page:
        open_page(page, scripted)
        button = page.locator("#session-list .session").filter(has_text="Notes from")
        listed = button.locator(".title")
        expect(listed).to_have_attribute("title", LONG_TITLE)
        assert_cut_at_a_word(listed.text_content() or "", LONG_TITLE)
        assert fits(button)
        button.click()
        header = page.locator("#chat-title")
        expect(header).to_have_attribute("title", LONG_TITLE)
        assert_cut_at_a_word(header.text_content() or "", LONG_TITLE)
        assert fits(header)


def test_the_title_helper_cuts_only_what_is_too_long(page: Page, scripted: ScriptedGateway) -> None:
    open_page(page, scripted)
    said = page.evaluate(
        """async () => {
          const { shortTitle } = await import("/webchat/text.js");
          return [shortTitle("Plan a quiet weekend", 48), shortTitle("x".repeat(48), 48),
                  shortTitle("Plan a quiet weekend, by the sea", 24),
                  shortTitle("y".repeat(60), 48), shortTitle("two\\n lines  here", 48)];
        }"""
    )
    assert said == [
        "Plan a quiet weekend",
        "x" * 48,
        "Plan a quiet weekend…",  # the comma before the cut goes too
        "y" * 47 + "…",  # one word longer than the room: the only cut inside a word
        "two lines here",
    ]
