"""Where an inbound message goes: its session key and the text the agent sees (pure).

Session keys follow OpenClaw's shape, so clients show channel sessions like WebChat ones:
`agent:<agentId>:<channel>:dm:<peer>` and `agent:<agentId>:<channel>:group:<chat>`, with
`:thread:<id>` or `:topic:<id>` appended for threads. An account other than `default`
adds its name after the channel (`agent:main:telegram:work:dm:42`).

Text from a channel is untrusted: it reaches the agent inside a delimiter that says who
sent it and that it is content, not instructions (`UNTRUSTED_NOTE` explains it to a model).
"""

from __future__ import annotations

from typing import Final

from ..agents.backend import UNTRUSTED_BEGIN, UNTRUSTED_END, UNTRUSTED_NOTE
from .base import ChatKind, InboundMessage, Target

__all__ = [
    "DEFAULT_ACCOUNT",
    "UNTRUSTED_BEGIN",
    "UNTRUSTED_END",
    "UNTRUSTED_NOTE",
    "reply_target",
    "session_key",
    "wrap_untrusted",
]

DEFAULT_ACCOUNT: Final = "default"


def _part(value: str) -> str:
    # A colon inside an id would add a level to the key; platforms rarely use one.
    return value.replace(":", "_")


def session_key(message: InboundMessage, agent_id: str = "main") -> str:
    """Return the session key of the conversation `message` belongs to."""
    parts = ["agent", agent_id, message.channel]
    if message.account_id != DEFAULT_ACCOUNT:
        parts.append(message.account_id)
    if message.chat.kind is ChatKind.DM:
        parts += ["dm", _part(message.sender.id)]
    else:
        parts += ["group", _part(message.chat.id)]
        if message.thread_id is not None:
            parts += [message.thread_kind, _part(message.thread_id)]
    return ":".join(parts)


def reply_target(message: InboundMessage) -> Target:
    """Return where the answer to `message` goes: its chat and thread; in groups, a reply."""
    reply_to = message.message_id if message.chat.kind is ChatKind.GROUP else None
    return Target(message.chat.id, message.thread_id, reply_to)


def _media_lines(message: InboundMessage) -> list[str]:
    return [f"[{m.kind}: {m.path} ({m.mime}, {m.size} bytes)]" for m in message.media]


def wrap_untrusted(messages: list[InboundMessage]) -> str:
    """Return the agent's view of one turn: the messages' text and media, delimited."""
    first = messages[0]
    sender = first.sender.name.replace('"', "'") or first.sender.id
    where = "direct message" if first.chat.kind is ChatKind.DM else f"group {first.chat.id}"
    header = (
        f'{UNTRUSTED_BEGIN} channel={first.channel} from="{sender}" '
        f"id={first.sender.id} in={where}>>>"
    )
    body: list[str] = []
    for message in messages:
        if message.text:
            # A sender cannot close the delimiter early by typing it.
            body.append(message.text.replace(UNTRUSTED_END, "[delimiter removed]"))
        body += _media_lines(message)
    return "\n".join([header, *body, UNTRUSTED_END])
