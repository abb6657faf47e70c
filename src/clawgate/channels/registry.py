"""Which adapter serves which channel, and the pip extra its SDK comes with.

Adapter modules are imported only when their channel is configured, so a gateway without
channels loads no SDK; a configured channel whose extra is missing fails alone, with a
one-line message naming the extra to install.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Final

from .base import ChannelError

__all__ = ["ADAPTERS", "AdapterSpec", "MissingExtra", "load_adapter", "spec_for"]


@dataclass(frozen=True, slots=True)
class AdapterSpec:
    """Where a channel's adapter class lives and which extra installs its SDK."""

    module: str
    cls: str
    extra: str
    # The SDK's import name, so `clawgate doctor` can tell whether the extra is installed.
    sdk: str
    # Whether an account cannot start without a secret (IRC servers often need none).
    credential_required: bool = True


#: Every platform channel this build knows (WebChat, built in, is `webchat.py`: the gateway
#: hands the channel layer its adapter directly, see `manager.AdapterFactory`). A channel with
#: modes served by different adapters has one entry per mode other than its default, keyed
#: `<channel>/<mode>` (`spec_for` picks by the account's `mode` option).
ADAPTERS: Final = {
    "telegram": AdapterSpec(
        "clawgate.channels.telegram", "TelegramAdapter", "telegram", "telegram"
    ),
    # A small client on asyncio streams: no SDK to install (the `irc` extra is empty).
    "irc": AdapterSpec(
        "clawgate.channels.irc", "IrcAdapter", "irc", "asyncio", credential_required=False
    ),
    "matrix": AdapterSpec("clawgate.channels.matrix", "MatrixAdapter", "matrix", "nio"),
    "slack": AdapterSpec("clawgate.channels.slack", "SlackAdapter", "slack", "slack_sdk"),
    # Our own client on aiohttp (channels/discord.py says why): the extra is empty.
    "discord": AdapterSpec("clawgate.channels.discord", "DiscordAdapter", "discord", "aiohttp"),
    # The Cloud API over aiohttp: no SDK (the `whatsapp` extra is empty).
    "whatsapp": AdapterSpec("clawgate.channels.whatsapp", "WhatsAppAdapter", "whatsapp", "aiohttp"),
    # BlueBubbles' REST API over aiohttp: no SDK (the `imessage` extra is empty).
    "imessage": AdapterSpec("clawgate.channels.imessage", "IMessageAdapter", "imessage", "aiohttp"),
    # Personal WhatsApp (`mode = "web"`): the linked session is the credential (no token).
    "whatsapp/web": AdapterSpec(
        "clawgate.channels.whatsapp_web",
        "WhatsAppWebAdapter",
        "whatsapp-web",
        "neonize",
        credential_required=False,
    ),
    # signal-cli's HTTP daemon, spoken with aiohttp (the `signal` extra is empty); the
    # account number is the identity and signal-cli holds the keys: no credential here.
    "signal": AdapterSpec(
        "clawgate.channels.signal", "SignalAdapter", "signal", "aiohttp", credential_required=False
    ),
}


class MissingExtra(ChannelError):
    """A configured channel's SDK is not installed."""


def spec_for(channel: str, mode: Any = None) -> AdapterSpec | None:
    """Return the adapter spec serving `channel` (in `mode`, when it has one of its own)."""
    return ADAPTERS.get(f"{channel}/{mode}") or ADAPTERS.get(channel)


def load_adapter(channel: str, mode: Any = None) -> Any:
    """Import and return the adapter class of `channel` (in `mode`, see `spec_for`).

    Raises:
        MissingExtra: its SDK is not installed; the message names the extra.
        ChannelError: no adapter serves `channel`.
    """
    spec = spec_for(channel, mode)
    if spec is None:
        known = ", ".join(name for name in ADAPTERS if "/" not in name)
        raise ChannelError(f"no adapter for channel {channel!r}; known: {known}")
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        raise MissingExtra(
            f"the {channel} channel needs its extra: pip install 'clawgate[{spec.extra}]'"
            f" ({exc.name or exc} is missing)"
        ) from None
    return getattr(module, spec.cls)
