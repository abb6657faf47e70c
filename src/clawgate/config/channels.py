"""`[channels]`: one table per messaging channel, with its named accounts (README "Channels")."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field, model_validator

from .section import ENV_NAME, Section

__all__ = [
    "ChannelCommon",
    "ChannelsSection",
    "DiscordAccountSection",
    "DiscordSection",
    "DmPolicy",
    "GroupPolicy",
    "IMessageAccountSection",
    "IMessageSection",
    "IrcAccountSection",
    "IrcSection",
    "MatrixAccountSection",
    "MatrixSection",
    "SignalAccountSection",
    "SignalSection",
    "SlackAccountSection",
    "SlackSection",
    "StreamMode",
    "TelegramAccountSection",
    "TelegramSection",
    "WhatsAppAccountSection",
    "WhatsAppSection",
]

DmPolicy = Literal["pairing", "allowlist", "open", "disabled"]
GroupPolicy = Literal["allowlist", "open", "disabled"]
# Account names become part of session keys; `dm` and `group` are the key's own words.
_ACCOUNT_NAME: Final = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_RESERVED_ACCOUNTS: Final = frozenset({"dm", "group"})
_MATRIX_USER: Final = r"^@[^:\s]+:\S+$"


class ChannelCommon(Section):
    """What every channel table has: who may talk to the agent, and how (README "Channels").

    A channel's own section subclasses this and adds its credentials; its named accounts
    (`[channels.<name>.accounts.<id>]`) repeat any of these keys to override them.
    """

    enabled: bool = Field(default=True, description="false: the channel's accounts stay off")
    dm_policy: DmPolicy = Field(
        default="pairing",
        description=(
            "direct messages from unknown senders: a pairing code (default), refused, or let in"
        ),
    )
    allow_from: list[str] = Field(
        default_factory=list, description="senders let in without pairing (platform user ids)"
    )
    group_policy: GroupPolicy = Field(
        default="allowlist",
        description="group chats: only those in groups (allowlist), any (open), or none",
    )
    groups: list[str] = Field(
        default_factory=list, description="group chats the agent may answer in (platform chat ids)"
    )
    require_mention: bool = Field(
        default=True, description="in groups, answer only when the bot is mentioned"
    )
    debounce_ms: Annotated[int, Field(ge=0, le=60_000)] = Field(
        default=1500,
        description=(
            "text messages from one sender in one chat this close together become one turn"
        ),
    )

    #: The keys that hold URLs, in the table and in each named account: http(s) only.
    url_keys: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _urls_and_account_names(self) -> Any:
        accounts: dict[str, Any] = getattr(self, "accounts", {})
        for key in self.url_keys:
            for url in [getattr(self, key), *(getattr(a, key) for a in accounts.values())]:
                if url and not url.startswith(("http://", "https://")):
                    raise ValueError(f"{url!r} must start with http:// or https://")
        reserved = _RESERVED_ACCOUNTS & set(accounts)
        if reserved:
            raise ValueError(f"account name {sorted(reserved)[0]!r} is reserved; choose another")
        return self


class _AccountOverrides(Section):
    """The keys every channel's named account may override; unset ones come from above."""

    enabled: bool | None = None
    dm_policy: DmPolicy | None = None
    allow_from: list[str] | None = None
    group_policy: GroupPolicy | None = None
    groups: list[str] | None = None
    require_mention: bool | None = None
    debounce_ms: Annotated[int, Field(ge=0, le=60_000)] | None = None


#: `stream = "edit" | "off"` (Slack, Telegram): show a reply while the agent writes it.
StreamMode = Literal["edit", "off"]
#: A Slack emoji name, without the colons (`eyes`, `white_check_mark`, `+1`).
_EMOJI_NAME: Final = r"^[a-z0-9_+'-]{1,100}$"
_STREAM_HELP: Final = (
    "edit (post the reply once it has text, edit it in place as the agent writes) | off"
    " (send it whole at the end)"
)


class TelegramAccountSection(_AccountOverrides):
    """`[channels.telegram.accounts.<id>]`: one more bot; unset keys come from the table above."""

    token: str | None = None
    token_file: str | None = None
    token_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    api_base: str | None = None
    mode: Literal["polling", "webhook"] | None = None
    webhook_url: str | None = None
    poll_timeout_s: Annotated[int, Field(ge=1, le=50)] | None = None
    stream: StreamMode | None = None


class TelegramSection(ChannelCommon):
    """`[channels.telegram]`: a Telegram bot (Bot API), long polling or a webhook."""

    url_keys = ("api_base", "webhook_url")

    token: str | None = Field(
        default=None, description="the bot token from @BotFather (or token_file / token_env)"
    )
    token_file: str | None = Field(default=None, description="a file holding the bot token")
    token_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None,
        description=(
            "read the token from this environment variable (default CLAWGATE_TELEGRAM_TOKEN)"
        ),
    )
    api_base: str = Field(
        default="https://api.telegram.org",
        description=(
            "the Bot API server root; `/bot<token>/<method>` is appended (self-hosted servers too)"
        ),
    )
    mode: Literal["polling", "webhook"] = Field(default="polling", description="polling | webhook")
    webhook_url: str | None = Field(
        default=None,
        description=(
            "the public https base URL that reaches this gateway's HTTP port (webhook mode)"
        ),
    )
    poll_timeout_s: Annotated[int, Field(ge=1, le=50)] = Field(
        default=25, description="how long one getUpdates long poll waits"
    )
    stream: StreamMode = Field(default="off", description=_STREAM_HELP)
    accounts: dict[Annotated[str, Field(pattern=_ACCOUNT_NAME)], TelegramAccountSection] = Field(
        default_factory=dict
    )


_IRC_NICK: Final = r"^[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]{0,29}$"
_IRC_CHANNEL: Final = r"^[#&+!][^\s,\x07]{1,49}$"


class IrcAccountSection(_AccountOverrides):
    """`[channels.irc.accounts.<id>]`: one more IRC identity; unset keys come from above."""

    server: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    tls: bool | None = None
    tls_verify: bool | None = None
    tls_ca_file: str | None = None
    nick: Annotated[str, Field(pattern=_IRC_NICK)] | None = None
    username: str | None = None
    realname: str | None = None
    password: str | None = None
    password_file: str | None = None
    password_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    sasl: bool | None = None
    sasl_username: str | None = None
    channels: list[Annotated[str, Field(pattern=_IRC_CHANNEL)]] | None = None
    flood_burst: Annotated[int, Field(ge=1, le=100)] | None = None
    flood_interval_ms: Annotated[int, Field(ge=0, le=60_000)] | None = None
    ping_interval_s: Annotated[float, Field(gt=0, le=600)] | None = None


class IrcSection(ChannelCommon):
    """`[channels.irc]`: an IRC client identity on one server, over TLS by default.

    The password is the server password (PASS), or the account's password for SASL PLAIN
    when `sasl = true`. `groups` defaults to `channels`: a joined channel is an allowed one.
    """

    server: str | None = Field(
        default=None, description="the IRC server's host name, e.g. irc.libera.chat"
    )
    port: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        default=None, description="6697 with TLS, 6667 without"
    )
    tls: bool = Field(default=True, description="connect over TLS")
    tls_verify: bool = Field(default=True, description="verify the server's certificate")
    tls_ca_file: str | None = Field(
        default=None,
        description=(
            "a CA bundle (PEM) to verify the server with, for a self-signed server certificate"
        ),
    )
    nick: Annotated[str, Field(pattern=_IRC_NICK)] = Field(
        default="clawgate", description="the nick the agent uses"
    )
    username: str | None = Field(
        default=None, description="the user name sent with USER (default: the nick)"
    )
    realname: str = Field(default="clawgate assistant", description="the real name sent with USER")
    password: str | None = Field(
        default=None,
        description="the server password (PASS), or the SASL password with sasl = true",
    )
    password_file: str | None = Field(default=None, description="a file holding the password")
    password_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None,
        description=(
            "read the password from this environment variable (default CLAWGATE_IRC_PASSWORD)"
        ),
    )
    sasl: bool = Field(default=False, description="log in with SASL PLAIN")
    sasl_username: str | None = Field(
        default=None, description="the services account for SASL PLAIN (default: the nick)"
    )
    channels: list[Annotated[str, Field(pattern=_IRC_CHANNEL)]] = Field(
        default_factory=list, description='channels to join, e.g. ["#clawgate"]'
    )
    flood_burst: Annotated[int, Field(ge=1, le=100)] = Field(
        default=5,
        description="flood control: this many lines at once, then one every flood_interval_ms",
    )
    flood_interval_ms: Annotated[int, Field(ge=0, le=60_000)] = Field(
        default=1000, description="the pause between lines once the burst is spent"
    )
    ping_interval_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=60.0,
        description=(
            "a PING after this long without a line from the server; no answer -> reconnect"
        ),
    )
    accounts: dict[Annotated[str, Field(pattern=_ACCOUNT_NAME)], IrcAccountSection] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _accounts(self) -> IrcSection:
        if self.server is None and (
            not self.accounts or any(a.server is None for a in self.accounts.values())
        ):
            raise ValueError("server is required: the IRC server's host name, e.g. irc.libera.chat")
        return self


class MatrixAccountSection(_AccountOverrides):
    """`[channels.matrix.accounts.<id>]`: one more Matrix user; unset keys come from above."""

    homeserver: str | None = None
    user_id: Annotated[str, Field(pattern=_MATRIX_USER)] | None = None
    access_token: str | None = None
    access_token_file: str | None = None
    access_token_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    password: str | None = None
    password_file: str | None = None
    password_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    device_name: str | None = None
    sync_timeout_s: Annotated[int, Field(ge=1, le=120)] | None = None


class MatrixSection(ChannelCommon):
    """`[channels.matrix]`: a Matrix user the agent speaks as (matrix-nio, any homeserver).

    Log in with an access token (`access_token`, `_file` or `_env`) or a password (same
    three forms); a token wins when both are set. `allow_from` and `groups` hold Matrix ids
    (`@alice:example.org`, `!room:example.org`).
    """

    url_keys = ("homeserver",)

    homeserver: str | None = Field(
        default=None,
        description="the homeserver's client API base URL, such as https://matrix.example.org",
    )
    user_id: Annotated[str, Field(pattern=_MATRIX_USER)] | None = Field(
        default=None, description="the bot's Matrix id, e.g. @bot:example.org"
    )
    access_token: str | None = Field(default=None, description="an access token of that user")
    access_token_file: str | None = Field(
        default=None, description="a file holding the access token"
    )
    access_token_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None, description="read the access token from this environment variable"
    )
    password: str | None = Field(
        default=None, description="the user's password, to log in when no token is given"
    )
    password_file: str | None = Field(default=None, description="a file holding the password")
    password_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None, description="read the password from this environment variable"
    )
    device_name: str = Field(
        default="clawgate", description="the device name other users see in the bot's session list"
    )
    sync_timeout_s: Annotated[int, Field(ge=1, le=120)] = Field(
        default=30, description="how long one /sync long poll waits on the homeserver"
    )
    accounts: dict[Annotated[str, Field(pattern=_ACCOUNT_NAME)], MatrixAccountSection] = Field(
        default_factory=dict
    )


class SlackAccountSection(_AccountOverrides):
    """`[channels.slack.accounts.<id>]`: one more Slack app; unset keys come from above."""

    bot_token: str | None = None
    bot_token_file: str | None = None
    bot_token_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    app_token: str | None = None
    app_token_file: str | None = None
    app_token_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    api_base: str | None = None
    mode: Literal["socket", "events"] | None = None
    signing_secret: str | None = None
    signing_secret_file: str | None = None
    signing_secret_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    stream: StreamMode | None = None
    ack_reaction: Annotated[str, Field(pattern=_EMOJI_NAME)] | None = None


class SlackSection(ChannelCommon):
    """`[channels.slack]`: a Slack app in Socket Mode (no public URL) or over the Events API.

    The bot token (`xoxb-`, Web API calls), and for `mode = "socket"` the app-level token
    (`xapp-`, scope `connections:write`, opens the Socket Mode connection) or for
    `mode = "events"` the signing secret (checks the requests Slack sends to
    `/channels/slack/<account>`); each from `<name>`, `<name>_file` or `<name>_env` (default
    CLAWGATE_SLACK_BOT_TOKEN, CLAWGATE_SLACK_APP_TOKEN, CLAWGATE_SLACK_SIGNING_SECRET).
    `allow_from` holds user ids (`U...`), `groups` channel ids (`C...`).
    """

    url_keys = ("api_base",)

    bot_token: str | None = Field(
        default=None, description="the bot token, xoxb-… (or bot_token_file / bot_token_env)"
    )
    bot_token_file: str | None = Field(default=None, description="a file holding the bot token")
    bot_token_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None,
        description="read the bot token from this variable (default CLAWGATE_SLACK_BOT_TOKEN)",
    )
    app_token: str | None = Field(
        default=None,
        description="the app-level token, xapp-…, scope connections:write (Socket Mode)",
    )
    app_token_file: str | None = Field(default=None, description="a file holding the app token")
    app_token_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None,
        description="read the app token from this variable (default CLAWGATE_SLACK_APP_TOKEN)",
    )
    api_base: str = Field(
        default="https://slack.com/api/",
        description="the Web API root; `<method>` is appended (slack-sdk's base_url)",
    )
    mode: Literal["socket", "events"] = Field(
        default="socket",
        description=(
            "socket (Socket Mode, the app token) | events (the Events API: Slack POSTs to"
            " <public url>/channels/slack/<account>, checked with the signing secret)"
        ),
    )
    signing_secret: str | None = Field(
        default=None,
        description="the app's signing secret (Basic Information > App Credentials), events mode",
    )
    signing_secret_file: str | None = Field(
        default=None, description="a file holding the signing secret"
    )
    signing_secret_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None,
        description=(
            "read the signing secret from this variable (default CLAWGATE_SLACK_SIGNING_SECRET)"
        ),
    )
    stream: StreamMode = Field(default="off", description=_STREAM_HELP)
    ack_reaction: Annotated[str, Field(pattern=_EMOJI_NAME)] | None = Field(
        default=None,
        description='an emoji name (e.g. "eyes") added to each message the agent takes up',
    )
    accounts: dict[Annotated[str, Field(pattern=_ACCOUNT_NAME)], SlackAccountSection] = Field(
        default_factory=dict
    )


class IMessageAccountSection(_AccountOverrides):
    """`[channels.imessage.accounts.<id>]`: one more BlueBubbles server; unset keys as above."""

    server_url: str | None = None
    password: str | None = None
    password_file: str | None = None
    password_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    webhook_url: str | None = None
    mention_names: list[str] | None = None
    ping_interval_s: Annotated[float, Field(ge=0.05, le=300)] | None = None


class IMessageSection(ChannelCommon):
    """`[channels.imessage]`: iMessage through a BlueBubbles server on a Mac (experimental).

    The server password from `password`, `password_file` or `password_env` (default
    CLAWGATE_IMESSAGE_PASSWORD). `allow_from` holds addresses (`+15551234567`, e-mail
    addresses), `groups` chat guids (`iMessage;+;chat...`).
    """

    url_keys = ("server_url", "webhook_url")

    server_url: str | None = Field(
        default=None,
        description="the BlueBubbles server's URL, as its settings show it (http(s)://host:1234)",
    )
    password: str | None = Field(
        default=None,
        description="the BlueBubbles server password (or password_file / password_env)",
    )
    password_file: str | None = Field(default=None, description="a file holding the password")
    password_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None,
        description="read the password from this variable (default CLAWGATE_IMESSAGE_PASSWORD)",
    )
    webhook_url: str | None = Field(
        default=None,
        description=(
            "the base URL at which the BlueBubbles server reaches this gateway's HTTP port;"
            " the gateway registers its webhook under it at every start"
        ),
    )
    mention_names: list[str] = Field(
        default_factory=lambda: ["clawgate"],
        description="in group chats, answer only messages that name the bot by one of these",
    )
    ping_interval_s: Annotated[float, Field(ge=0.05, le=300)] = Field(
        default=30.0, description="how often the server is pinged (a failed ping reconnects)"
    )
    accounts: dict[Annotated[str, Field(pattern=_ACCOUNT_NAME)], IMessageAccountSection] = Field(
        default_factory=dict
    )


class WhatsAppAccountSection(_AccountOverrides):
    """`[channels.whatsapp.accounts.<id>]`: one more phone number; unset keys come from above."""

    mode: Literal["cloud", "web"] | None = None
    phone_number_id: Annotated[str, Field(pattern=r"^[0-9]{1,32}$")] | None = None
    access_token: str | None = None
    access_token_file: str | None = None
    access_token_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    app_secret: str | None = None
    app_secret_file: str | None = None
    app_secret_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    verify_token: str | None = None
    verify_token_file: str | None = None
    verify_token_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    graph_base: str | None = None
    reconnect_grace_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    link_timeout_s: Annotated[float, Field(gt=0, le=3600)] | None = None


class WhatsAppSection(ChannelCommon):
    """`[channels.whatsapp]`: WhatsApp, through Meta's Cloud API or as a linked device.

    `mode = "cloud"` (the default): a WhatsApp Business number on the official Cloud API.
    Three secrets, each from `<name>`, `<name>_file` or `<name>_env` (default
    CLAWGATE_WHATSAPP_ACCESS_TOKEN, _APP_SECRET, _VERIFY_TOKEN): the access token (a system
    user's permanent token), the app secret (checks every webhook's signature) and the verify
    token (typed into the webhook settings). Meta calls `https://<public
    host>/channels/whatsapp/<account>`.
    `mode = "web"` (experimental): a linked device of a personal number (WhatsApp Web
    multi-device, through neonize). No token: the linked session under
    `<home>/whatsapp/<account>/` is the credential (`clawgate channels login whatsapp` shows
    the QR code to scan).
    `allow_from` holds phone numbers as WhatsApp ids (`16505551234`, no `+`); in web mode,
    `groups` holds group ids (`…@g.us`).
    """

    url_keys = ("graph_base",)

    mode: Literal["cloud", "web"] = Field(
        default="cloud",
        description="cloud: the official Business Cloud API; web: a linked personal number",
    )
    phone_number_id: Annotated[str, Field(pattern=r"^[0-9]{1,32}$")] | None = Field(
        default=None, description="the business phone number's id (WhatsApp > API Setup)"
    )
    access_token: str | None = Field(
        default=None, description="a permanent access token of a system user (or _file / _env)"
    )
    access_token_file: str | None = Field(default=None, description="a file holding the token")
    access_token_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None,
        description="read the token from this variable (default CLAWGATE_WHATSAPP_ACCESS_TOKEN)",
    )
    app_secret: str | None = Field(
        default=None, description="the app secret (App settings > Basic): webhook signatures"
    )
    app_secret_file: str | None = Field(default=None, description="a file holding the app secret")
    app_secret_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None,
        description="read the app secret from this variable (default CLAWGATE_WHATSAPP_APP_SECRET)",
    )
    verify_token: str | None = Field(
        default=None, description="the verify token typed into the webhook settings"
    )
    verify_token_file: str | None = Field(
        default=None, description="a file holding the verify token"
    )
    verify_token_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None,
        description=(
            "read the verify token from this variable (default CLAWGATE_WHATSAPP_VERIFY_TOKEN)"
        ),
    )
    graph_base: str = Field(
        default="https://graph.facebook.com/v21.0",
        description="the Graph API root with its version",
    )
    reconnect_grace_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=60.0,
        description="web: how long whatsmeow may reconnect by itself before the client is rebuilt",
    )
    link_timeout_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=180.0,
        description="web: how long an unlinked account shows QR codes before it waits for a login",
    )
    accounts: dict[Annotated[str, Field(pattern=_ACCOUNT_NAME)], WhatsAppAccountSection] = Field(
        default_factory=dict
    )


_E164: Final = r"^\+[1-9][0-9]{5,14}$"


class SignalAccountSection(_AccountOverrides):
    """`[channels.signal.accounts.<id>]`: one more Signal number; unset keys come from above."""

    account: Annotated[str, Field(pattern=_E164)] | None = None
    http_url: str | None = None
    attachments_dir: str | None = None


class SignalSection(ChannelCommon):
    """`[channels.signal]`: a Signal account held by a signal-cli daemon (`daemon --http`).

    signal-cli keeps the account's keys; clawgate speaks to its JSON-RPC and event stream.
    `allow_from` holds phone numbers (`+15551234567`) or, for senders who hide their
    number, Signal uuids; `groups` holds group ids as `signal-cli listGroups` prints them.
    """

    url_keys = ("http_url",)

    account: Annotated[str, Field(pattern=_E164)] | None = Field(
        default=None,
        description="the number signal-cli is linked or registered with, e.g. +15551234567",
    )
    http_url: str = Field(
        default="http://127.0.0.1:8080",
        description="the signal-cli daemon's HTTP root (signal-cli daemon --http HOST:PORT)",
    )
    attachments_dir: str = Field(
        default="~/.local/share/signal-cli/attachments",
        description="where signal-cli stores received attachments (its data dir + /attachments)",
    )
    accounts: dict[Annotated[str, Field(pattern=_ACCOUNT_NAME)], SignalAccountSection] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _accounts(self) -> SignalSection:
        if self.account is None and not self.accounts:
            raise ValueError("account is required: the number signal-cli holds, e.g. +15551234567")
        for name, each in self.accounts.items():
            if each.account is None:
                raise ValueError(f"accounts.{name}.account is required: each account is a number")
        return self


class DiscordAccountSection(_AccountOverrides):
    """`[channels.discord.accounts.<id>]`: one more Discord bot; unset keys come from above."""

    token: str | None = None
    token_file: str | None = None
    token_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    api_base: str | None = None


class DiscordSection(ChannelCommon):
    """`[channels.discord]`: a Discord bot over the gateway WebSocket and REST API v10.

    The bot token from `token`, `token_file` or `token_env` (default
    CLAWGATE_DISCORD_BOT_TOKEN). `allow_from` holds user ids, `groups` guild channel ids
    (a thread belongs to its parent channel); ids are the numbers Developer Mode copies.
    """

    url_keys = ("api_base",)

    token: str | None = Field(default=None, description="the bot token (or token_file / token_env)")
    token_file: str | None = Field(default=None, description="a file holding the bot token")
    token_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None,
        description="read the bot token from this variable (default CLAWGATE_DISCORD_BOT_TOKEN)",
    )
    api_base: str = Field(
        default="https://discord.com/api/v10",
        description="the REST API root; the gateway URL comes from its GET /gateway/bot",
    )
    accounts: dict[Annotated[str, Field(pattern=_ACCOUNT_NAME)], DiscordAccountSection] = Field(
        default_factory=dict
    )


class ChannelsSection(Section):
    """`[channels]`: messaging channels, one table each; none is configured by default."""

    required_for_ready: bool = Field(
        default=False,
        description="whether `/readyz` fails while an enabled channel account is not connected",
    )
    telegram: TelegramSection | None = None
    irc: IrcSection | None = None
    matrix: MatrixSection | None = None
    slack: SlackSection | None = None
    discord: DiscordSection | None = None
    imessage: IMessageSection | None = None
    whatsapp: WhatsAppSection | None = None
    signal: SignalSection | None = None

    def configured(self) -> list[str]:
        """Return the names of the channels with a table, in a fixed order."""
        return [
            name
            for name in (
                "telegram",
                "irc",
                "matrix",
                "slack",
                "discord",
                "imessage",
                "whatsapp",
                "signal",
            )
            if getattr(self, name) is not None
        ]
