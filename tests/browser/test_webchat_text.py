"""WebChat's wording in a real browser: counts in the right number, against a scripted gateway."""

from __future__ import annotations

from playwright.sync_api import Page, expect

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
