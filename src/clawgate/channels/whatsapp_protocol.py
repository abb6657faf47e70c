"""The WhatsApp Cloud API's wire rules, without I/O: webhooks in, Graph API requests out.

Meta calls one callback URL per app: a GET to verify the subscription (`hub.mode=subscribe`,
`hub.verify_token`, answered with `hub.challenge`), then a POST per notification, signed
`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed with the app secret>`.
A notification is `{"object": "whatsapp_business_account", "entry": [{"changes": [{"field":
"messages", "value": {"contacts", "messages", "statuses", ...}}]}]}`; Meta resends a POST
that was not answered 2xx, so what can never be read is answered 200 and skipped, and only
a body that is not JSON at all gets 400 (see `whatsapp.py`).

The Cloud API has no group chats for bots: a message carrying `group_id` is read as a group
message and gated like one (no group is ever allowed unless listed).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .base import (
    AccountConfig,
    AuthFailed,
    ChannelError,
    ChatKind,
    ChatRef,
    InboundMessage,
    Media,
    PermanentSendError,
    RateLimited,
    Sender,
)

__all__ = [
    "MAX_TEXT",
    "MEDIA_KINDS",
    "CloudMessage",
    "Notification",
    "StatusUpdate",
    "UnreadableNotification",
    "classify_error",
    "media_payload",
    "normalize",
    "parse_notification",
    "sent_message_id",
    "signature_ok",
    "text_payload",
    "verification",
]

#: The Cloud API refuses a text body longer than this.
MAX_TEXT: Final = 4096
#: Inbound message types that carry a downloadable file, and the layer's name for each.
MEDIA_KINDS: Final = {"image": "photo", "document": "document", "audio": "audio", "video": "video"}
_SIGNATURE_PREFIX: Final = "sha256="
#: The latest Unix time (seconds) read: its milliseconds still fit SQLite's 64-bit INTEGER.
_MAX_TIMESTAMP_S: Final = (2**63 - 1) // 1000
# Graph error codes (developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
_AUTH_CODES: Final = frozenset({0, 10, 190, 200})
# 4: app calls; 80007: WABA limit; 130429: throughput; 131056: pair rate (per recipient).
_RATE_CODES: Final = frozenset({4, 80007, 130429, 131056, 613})
_PERMANENT_CODES: Final = frozenset(
    {
        100,  # invalid parameter
        131008,  # required parameter missing
        131009,  # parameter value invalid
        131021,  # recipient is the sender
        131026,  # undeliverable (not on WhatsApp, old app version)
        131030,  # recipient not in the allowed list (test numbers)
        131047,  # re-engagement: 24 hours since the user's last message
        131051,  # unsupported message type
        131052,  # media download error
        131053,  # media upload error
        133010,  # phone number not registered
    }
)


class UnreadableNotification(ChannelError):
    """A signed webhook body that is not a JSON object."""


@dataclass(frozen=True, slots=True)
class CloudMessage:
    """One `messages[]` entry of a notification, as far as the gateway reads it."""

    id: str
    sender: str
    name: str
    kind: str
    timestamp: int
    text: str = ""
    reply_to: str | None = None
    media_id: str | None = None
    mime: str = ""
    filename: str | None = None
    group_id: str | None = None


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One `statuses[]` entry: what became of a message the business sent."""

    message_id: str
    status: str
    recipient: str
    # "<code> <title>" of the first error, for `failed`.
    error: str = ""


@dataclass(frozen=True, slots=True)
class Notification:
    """What one webhook POST carried; `skipped` counts entries the gateway does not read."""

    messages: tuple[CloudMessage, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()
    skipped: int = 0


def signature_ok(app_secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` is `sha256=` and the HMAC-SHA256 of `body` keyed with `app_secret`."""
    if not header or not header.startswith(_SIGNATURE_PREFIX) or not app_secret:
        return False
    given = header[len(_SIGNATURE_PREFIX) :]
    if not given.isascii():  # compare_digest raises on non-ASCII text: a forged header
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.lower(), expected)


def verification(query: Mapping[str, str], verify_token: str) -> tuple[int, str]:
    """Answer the subscription GET: (200, the challenge) for the right token, else 403/400."""
    mode, token = query.get("hub.mode"), query.get("hub.verify_token")
    challenge = query.get("hub.challenge")
    if mode is None or token is None or challenge is None:
        return 400, "hub.mode, hub.verify_token and hub.challenge are required\n"
    if mode != "subscribe" or not verify_token:
        return 403, "refused\n"
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        return 403, "refused\n"
    return 200, challenge


def parse_notification(body: bytes) -> Notification:
    """Read a webhook POST body.

    Raises:
        UnreadableNotification: the body is not a JSON object.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UnreadableNotification("the webhook body is not JSON") from None
    if not isinstance(data, dict):
        raise UnreadableNotification("the webhook body is not a JSON object")
    messages: list[CloudMessage] = []
    statuses: list[StatusUpdate] = []
    skipped = 0
    if data.get("object") != "whatsapp_business_account":
        return Notification(skipped=1)
    for entry in _dicts(data.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                skipped += 1
                continue
            names = {
                str(c.get("wa_id")): _profile_name(c.get("profile"))
                for c in _dicts(value.get("contacts"))
            }
            for raw in _dicts(value.get("messages")):
                message = _message(raw, names)
                if message is None:
                    skipped += 1
                else:
                    messages.append(message)
            for raw in _dicts(value.get("statuses")):
                status = _status(raw)
                if status is None:
                    skipped += 1
                else:
                    statuses.append(status)
    return Notification(tuple(messages), tuple(statuses), skipped)


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _profile_name(profile: Any) -> str:
    name = profile.get("name") if isinstance(profile, dict) else None
    return str(name or "")


def _message(raw: dict[str, Any], names: Mapping[str, str]) -> CloudMessage | None:
    """Read one `messages[]` entry: text, or a file of `MEDIA_KINDS`; None for the rest."""
    msg_id, sender, kind = raw.get("id"), raw.get("from"), raw.get("type")
    if not (isinstance(msg_id, str) and isinstance(sender, str) and isinstance(kind, str)):
        return None
    try:
        timestamp = int(raw.get("timestamp") or 0)
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e999 reads as inf
        return None
    if not 0 <= timestamp <= _MAX_TIMESTAMP_S:
        return None
    context = raw.get("context")
    reply_to = context.get("id") if isinstance(context, dict) else None
    group = raw.get("group_id")
    common: dict[str, Any] = {
        "id": msg_id,
        "sender": sender,
        "name": names.get(sender, ""),
        "kind": kind,
        "timestamp": timestamp,
        "reply_to": reply_to if isinstance(reply_to, str) else None,
        "group_id": group if isinstance(group, str) else None,
    }
    if kind == "text":
        body = (raw.get("text") or {}).get("body") if isinstance(raw.get("text"), dict) else None
        return CloudMessage(text=body, **common) if isinstance(body, str) and body else None
    if kind in MEDIA_KINDS:
        media = raw.get(kind)
        if not isinstance(media, dict) or not isinstance(media.get("id"), str):
            return None
        caption = media.get("caption")
        filename = media.get("filename")
        return CloudMessage(
            text=caption if isinstance(caption, str) else "",
            media_id=media["id"],
            mime=str(media.get("mime_type") or "application/octet-stream"),
            filename=filename if isinstance(filename, str) else None,
            **common,
        )
    return None  # reactions, stickers, locations, contacts, buttons, `unsupported`, ...


def _status(raw: dict[str, Any]) -> StatusUpdate | None:
    msg_id, status = raw.get("id"), raw.get("status")
    if not (isinstance(msg_id, str) and isinstance(status, str)):
        return None
    errors = _dicts(raw.get("errors"))
    error = ""
    if errors:
        first = errors[0]
        error = f"{first.get('code', '?')} {first.get('title') or first.get('message') or ''}"
    return StatusUpdate(msg_id, status, str(raw.get("recipient_id") or ""), error.strip())


def normalize(
    message: CloudMessage, account: AccountConfig, media: tuple[Media, ...] = ()
) -> InboundMessage | None:
    """Return the channel layer's view of a message, or None when nothing is left of it."""
    if not message.text and not media:
        return None
    group = message.group_id is not None
    chat = ChatRef(message.group_id or message.sender, ChatKind.GROUP if group else ChatKind.DM)
    return InboundMessage(
        channel=account.channel,
        account_id=account.account_id,
        message_id=message.id,
        sender=Sender(message.sender, message.name),
        chat=chat,
        text=message.text,
        received_at=message.timestamp * 1000,
        media=media,
        reply_to=message.reply_to,
        mentioned=not group,
        command=message.text.startswith("/"),
    )


def text_payload(to: str, text: str, reply_to: str | None) -> dict[str, Any]:
    """Return the JSON body of a text message (`POST /{phone-number-id}/messages`)."""
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"preview_url": False, "body": text},
    }
    if reply_to:
        payload["context"] = {"message_id": reply_to}
    return payload


def media_payload(
    to: str,
    kind: str,
    *,
    media_id: str | None = None,
    link: str | None = None,
    caption: str = "",
    filename: str | None = None,
    reply_to: str | None = None,
) -> dict[str, Any]:
    """Return the JSON body of an image or document message, by uploaded id or by link."""
    media: dict[str, Any] = {"id": media_id} if media_id is not None else {"link": link}
    if caption:
        media["caption"] = caption
    if filename and kind == "document":
        media["filename"] = filename
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": kind,
        kind: media,
    }
    if reply_to:
        payload["context"] = {"message_id": reply_to}
    return payload


def sent_message_id(data: Any) -> str:
    """Return the `wamid` of a send's answer (`messages[0].id`)."""
    try:
        return str(data["messages"][0]["id"])
    except (KeyError, IndexError, TypeError):
        raise ChannelError("the Cloud API answered a send without a message id") from None


def classify_error(
    http_status: int, data: Any, retry_after: str | None, account_key: str
) -> ChannelError:
    """Map a Graph API error answer to the channel layer's error (to raise)."""
    error = data.get("error") if isinstance(data, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    code = code if isinstance(code, int) else -1
    label = f"HTTP {http_status}, code {code}" if code >= 0 else f"HTTP {http_status}"
    if http_status == 429 or code in _RATE_CODES:
        try:
            wait = max(float(retry_after), 0.0) if retry_after is not None else 1.0
        except ValueError:
            wait = 1.0
        return RateLimited(
            f"the Cloud API asked to wait ({label})", wait, account_wide=code != 131056
        )
    if code in _AUTH_CODES or http_status == 401:
        return AuthFailed(
            f"Meta refused the {account_key} access token ({label}); make a new permanent"
            " token for the system user (whatsapp_business_messaging permission)"
        )
    if code in _PERMANENT_CODES:
        return PermanentSendError(f"the Cloud API refused the message ({label})")
    return ChannelError(f"Cloud API error ({label})")
