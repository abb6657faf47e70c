"""Resolve `[channels.*]` tables into one `AccountConfig` per account, secrets included.

A secret comes from, in order: the account's `token_env` variable, its `token_file`
(relative paths are under the home), its `token`, and for the default account the
channel's environment variable (`CLAWGATE_TELEGRAM_TOKEN`, `CLAWGATE_DISCORD_BOT_TOKEN`).
Matrix has two secrets, tried in that order: an access token (`access_token_env`,
`access_token_file`, `access_token`, `CLAWGATE_MATRIX_ACCESS_TOKEN`) and a password (the
same with `password`). An account without one is still listed: it fails to start with a
message saying where to put it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ..config import (
    ChannelsSection,
    DiscordSection,
    IMessageSection,
    IrcSection,
    MatrixSection,
    SignalSection,
    SlackSection,
    TelegramSection,
    WhatsAppSection,
)
from .base import AccountConfig, SecretText
from .irc_protocol import fold
from .outbound import OutboxPolicy
from .routing import DEFAULT_ACCOUNT
from .supervision import BackoffPolicy

__all__ = ["ChannelSettings", "resolve_accounts"]

TELEGRAM_TOKEN_ENV: Final = "CLAWGATE_TELEGRAM_TOKEN"
IRC_PASSWORD_ENV: Final = "CLAWGATE_IRC_PASSWORD"
_COMMON: Final = (
    "enabled",
    "dm_policy",
    "allow_from",
    "group_policy",
    "groups",
    "require_mention",
    "debounce_ms",
)
_SECRET_KEYS: Final = ("token", "token_file", "token_env")
MATRIX_TOKEN_ENV: Final = "CLAWGATE_MATRIX_ACCESS_TOKEN"
MATRIX_PASSWORD_ENV: Final = "CLAWGATE_MATRIX_PASSWORD"
_MATRIX_SECRET_KEYS: Final = (
    "access_token",
    "access_token_file",
    "access_token_env",
    "password",
    "password_file",
    "password_env",
)


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """What the gateway's channel layer starts with."""

    accounts: tuple[AccountConfig, ...] = ()
    required_for_ready: bool = False
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    outbox: OutboxPolicy = field(default_factory=OutboxPolicy)


def _secret(
    values: Mapping[str, Any],
    home: Path,
    environ: Mapping[str, str],
    default_env: str | None,
    name: str = "token",
) -> tuple[str | None, str]:
    """Return the secret `name` (from `<name>_env`, `<name>_file`, `<name>`) and its source."""
    env_name = values.get(f"{name}_env")
    if env_name:
        return environ.get(env_name) or None, f"environment variable {env_name}"
    path_text = values.get(f"{name}_file")
    if path_text:
        path = Path(path_text).expanduser()
        path = path if path.is_absolute() else home / path
        try:
            return path.read_text(encoding="utf-8").strip() or None, f"{name}_file {path}"
        except OSError as exc:
            return None, f"{name}_file {path} ({exc.strerror or exc})"
    if values.get(name):
        return str(values[name]), f"{name} in config.toml"
    if default_env is not None:
        return environ.get(default_env) or None, f"environment variable {default_env}"
    return None, f"no {name} configured"


def _account_values(
    section: TelegramSection
    | MatrixSection
    | SlackSection
    | DiscordSection
    | IMessageSection
    | WhatsAppSection
    | SignalSection,
    secret_keys: tuple[str, ...],
    env_secret: bool,
) -> list[tuple[str, dict[str, Any]]]:
    """Return (account name, merged keys) pairs: the table's own account, then named ones.

    A named account inherits every key of the table except its secrets.
    """
    top = section.model_dump(exclude={"accounts"})
    named = {name: acc.model_dump(exclude_none=True) for name, acc in section.accounts.items()}
    has_own = any(top.get(key) for key in secret_keys) or env_secret
    accounts: list[tuple[str, dict[str, Any]]] = []
    if has_own or not named or DEFAULT_ACCOUNT in named:
        accounts.append((DEFAULT_ACCOUNT, {**top, **named.pop(DEFAULT_ACCOUNT, {})}))
    for name, values in sorted(named.items()):
        inherited = {k: v for k, v in top.items() if k not in secret_keys}
        accounts.append((name, {**inherited, **values}))
    return accounts


def _telegram(
    section: TelegramSection, home: Path, environ: Mapping[str, str]
) -> list[AccountConfig]:
    accounts = _account_values(section, _SECRET_KEYS, bool(environ.get(TELEGRAM_TOKEN_ENV)))
    resolved = []
    for name, values in accounts:
        default_env = TELEGRAM_TOKEN_ENV if name == DEFAULT_ACCOUNT else None
        secret, source = _secret(values, home, environ, default_env)
        resolved.append(
            AccountConfig(
                channel="telegram",
                account_id=name,
                secret=secret,
                secret_source=source,
                options={
                    "api_base": values["api_base"].rstrip("/"),
                    "mode": values["mode"],
                    "webhook_url": values.get("webhook_url"),
                    "poll_timeout_s": values["poll_timeout_s"],
                    "stream": values["stream"],
                },
                **{key: _frozen(values[key]) for key in _COMMON},
            )
        )
    return resolved


_IRC_SECRET_KEYS: Final = ("password", "password_file", "password_env")
_IRC_FOLDED: Final = ("groups", "allow_from")


def _irc(section: IrcSection, home: Path, environ: Mapping[str, str]) -> list[AccountConfig]:
    """Resolve `[channels.irc]`: the password (optional on IRC) as the secret."""
    top = section.model_dump(exclude={"accounts"})
    named = {name: acc.model_dump(exclude_none=True) for name, acc in section.accounts.items()}
    has_own = any(top.get(key) for key in _IRC_SECRET_KEYS) or not named
    accounts: list[tuple[str, dict[str, Any]]] = []
    if has_own or DEFAULT_ACCOUNT in named:
        accounts.append((DEFAULT_ACCOUNT, {**top, **named.pop(DEFAULT_ACCOUNT, {})}))
    for name, values in sorted(named.items()):
        inherited = {k: v for k, v in top.items() if k not in _IRC_SECRET_KEYS}
        accounts.append((name, {**inherited, **values}))
    resolved = []
    for name, values in accounts:
        keys = {"token": values.get("password"), "token_file": values.get("password_file")}
        keys["token_env"] = values.get("password_env")
        default_env = IRC_PASSWORD_ENV if name == DEFAULT_ACCOUNT else None
        secret, source = _secret(keys, home, environ, default_env)
        if secret is None and source.startswith("environment variable ") and not keys["token_env"]:
            source = "no password (none needed)"
        channels = [fold(str(c)) for c in values["channels"]]
        groups = [fold(str(g)) for g in values["groups"]] or channels
        # Sender ids are folded nicks or `account:<name>` (case kept: services decide).
        allow_from = [a if a.startswith("account:") else fold(a) for a in values["allow_from"]]
        tls = bool(values["tls"])
        resolved.append(
            AccountConfig(
                channel="irc",
                account_id=name,
                secret=secret,
                secret_source=source,
                options={
                    "server": values["server"],
                    "port": values.get("port") or (6697 if tls else 6667),
                    "tls": tls,
                    "tls_verify": values["tls_verify"],
                    "tls_ca_file": values.get("tls_ca_file"),
                    "nick": values["nick"],
                    "username": values.get("username") or values["nick"],
                    "realname": values["realname"],
                    "sasl": values["sasl"],
                    "sasl_username": values.get("sasl_username") or values["nick"],
                    "channels": channels,
                    "flood_burst": values["flood_burst"],
                    "flood_interval_ms": values["flood_interval_ms"],
                    "ping_interval_s": values["ping_interval_s"],
                },
                **{key: _frozen(values[key]) for key in _COMMON if key not in _IRC_FOLDED},
                groups=tuple(groups),
                allow_from=tuple(allow_from),
            )
        )
    return resolved


def _matrix(section: MatrixSection, home: Path, environ: Mapping[str, str]) -> list[AccountConfig]:
    env_secret = bool(environ.get(MATRIX_TOKEN_ENV) or environ.get(MATRIX_PASSWORD_ENV))
    resolved = []
    for name, values in _account_values(section, _MATRIX_SECRET_KEYS, env_secret):
        default = name == DEFAULT_ACCOUNT
        token_env = MATRIX_TOKEN_ENV if default else None
        secret, source = _secret(values, home, environ, token_env, "access_token")
        auth = "access_token"
        if secret is None:
            password_env = MATRIX_PASSWORD_ENV if default else None
            password, password_source = _secret(values, home, environ, password_env, "password")
            if password is not None or any(values.get(k) for k in _MATRIX_SECRET_KEYS[3:]):
                secret, source, auth = password, password_source, "password"
            elif not any(values.get(k) for k in _MATRIX_SECRET_KEYS[:3]):
                source = "no access_token or password configured"
        resolved.append(
            AccountConfig(
                channel="matrix",
                account_id=name,
                secret=secret,
                secret_source=source,
                options={
                    "homeserver": (values.get("homeserver") or "").rstrip("/"),
                    "user_id": values.get("user_id") or "",
                    "auth": auth,
                    "device_name": values["device_name"],
                    "sync_timeout_s": values["sync_timeout_s"],
                },
                **{key: _frozen(values[key]) for key in _COMMON},
            )
        )
    return resolved


SLACK_BOT_TOKEN_ENV: Final = "CLAWGATE_SLACK_BOT_TOKEN"
SLACK_APP_TOKEN_ENV: Final = "CLAWGATE_SLACK_APP_TOKEN"
SLACK_SIGNING_SECRET_ENV: Final = "CLAWGATE_SLACK_SIGNING_SECRET"
_SLACK_SECRET_KEYS: Final = (
    "bot_token",
    "bot_token_file",
    "bot_token_env",
    "app_token",
    "app_token_file",
    "app_token_env",
    "signing_secret",
    "signing_secret_file",
    "signing_secret_env",
)


def _slack(section: SlackSection, home: Path, environ: Mapping[str, str]) -> list[AccountConfig]:
    """Resolve `[channels.slack]`: the bot token as the secret, the others in options."""
    env_secret = bool(environ.get(SLACK_BOT_TOKEN_ENV))
    resolved = []
    for name, values in _account_values(section, _SLACK_SECRET_KEYS, env_secret):
        default = name == DEFAULT_ACCOUNT
        bot_env = SLACK_BOT_TOKEN_ENV if default else None
        secret, source = _secret(values, home, environ, bot_env, "bot_token")
        app_env = SLACK_APP_TOKEN_ENV if default else None
        app_token, app_source = _secret(values, home, environ, app_env, "app_token")
        signing_env = SLACK_SIGNING_SECRET_ENV if default else None
        signing, signing_source = _secret(values, home, environ, signing_env, "signing_secret")
        resolved.append(
            AccountConfig(
                channel="slack",
                account_id=name,
                secret=secret,
                secret_source=source,
                options={
                    "api_base": values["api_base"].rstrip("/") + "/",
                    "app_token": SecretText(app_token) if app_token else None,
                    "app_token_source": app_source,
                    "mode": values["mode"],
                    "signing_secret": SecretText(signing) if signing else None,
                    "signing_secret_source": signing_source,
                    "stream": values["stream"],
                    "ack_reaction": values["ack_reaction"],
                },
                **{key: _frozen(values[key]) for key in _COMMON},
            )
        )
    return resolved


IMESSAGE_PASSWORD_ENV: Final = "CLAWGATE_IMESSAGE_PASSWORD"
_IMESSAGE_SECRET_KEYS: Final = ("password", "password_file", "password_env")


def _imessage(
    section: IMessageSection, home: Path, environ: Mapping[str, str]
) -> list[AccountConfig]:
    """Resolve `[channels.imessage]`: the BlueBubbles server password as the secret."""
    env_secret = bool(environ.get(IMESSAGE_PASSWORD_ENV))
    resolved = []
    for name, values in _account_values(section, _IMESSAGE_SECRET_KEYS, env_secret):
        default_env = IMESSAGE_PASSWORD_ENV if name == DEFAULT_ACCOUNT else None
        secret, source = _secret(values, home, environ, default_env, "password")
        resolved.append(
            AccountConfig(
                channel="imessage",
                account_id=name,
                secret=secret,
                secret_source=source,
                options={
                    "server_url": (values.get("server_url") or "").rstrip("/"),
                    "webhook_url": (values.get("webhook_url") or "").rstrip("/"),
                    "mention_names": tuple(str(n) for n in values["mention_names"]),
                    "ping_interval_s": values["ping_interval_s"],
                },
                **{key: _frozen(values[key]) for key in _COMMON},
            )
        )
    return resolved


WHATSAPP_TOKEN_ENV: Final = "CLAWGATE_WHATSAPP_ACCESS_TOKEN"
WHATSAPP_APP_SECRET_ENV: Final = "CLAWGATE_WHATSAPP_APP_SECRET"
WHATSAPP_VERIFY_TOKEN_ENV: Final = "CLAWGATE_WHATSAPP_VERIFY_TOKEN"
_WHATSAPP_SECRETS: Final = ("access_token", "app_secret", "verify_token")
_WHATSAPP_SECRET_KEYS: Final = tuple(
    f"{name}{suffix}" for name in _WHATSAPP_SECRETS for suffix in ("", "_file", "_env")
)


def _whatsapp(
    section: WhatsAppSection, home: Path, environ: Mapping[str, str]
) -> list[AccountConfig]:
    """Resolve `[channels.whatsapp]`: per account, Cloud API secrets or a linked session."""
    env_secret = bool(environ.get(WHATSAPP_TOKEN_ENV))
    return [
        _whatsapp_web(name, values, home)
        if values["mode"] == "web"
        else _whatsapp_cloud(name, values, home, environ)
        for name, values in _account_values(section, _WHATSAPP_SECRET_KEYS, env_secret)
    ]


def _whatsapp_cloud(
    name: str, values: dict[str, Any], home: Path, environ: Mapping[str, str]
) -> AccountConfig:
    """A Cloud API account: the access token as the secret, the other two in options."""
    default = name == DEFAULT_ACCOUNT
    token_env = WHATSAPP_TOKEN_ENV if default else None
    secret, source = _secret(values, home, environ, token_env, "access_token")
    app_secret, app_source = _secret(
        values, home, environ, WHATSAPP_APP_SECRET_ENV if default else None, "app_secret"
    )
    verify, verify_source = _secret(
        values, home, environ, WHATSAPP_VERIFY_TOKEN_ENV if default else None, "verify_token"
    )
    return AccountConfig(
        channel="whatsapp",
        account_id=name,
        secret=secret,
        secret_source=source,
        options={
            "mode": values["mode"],
            "phone_number_id": values.get("phone_number_id"),
            "graph_base": values["graph_base"].rstrip("/"),
            "app_secret": SecretText(app_secret) if app_secret else None,
            "app_secret_source": app_source,
            "verify_token": SecretText(verify) if verify else None,
            "verify_token_source": verify_source,
        },
        **{key: _frozen(values[key]) for key in _COMMON},
    )


def _whatsapp_web(name: str, values: dict[str, Any], home: Path) -> AccountConfig:
    """A linked personal number: no secret; the session folder in options."""
    return AccountConfig(
        channel="whatsapp",
        account_id=name,
        secret_source=f"the linked session in {home / 'whatsapp' / name}",
        options={
            "mode": values["mode"],
            "session_dir": str(home / "whatsapp" / name),
            "reconnect_grace_s": values["reconnect_grace_s"],
            "link_timeout_s": values["link_timeout_s"],
        },
        **{key: _frozen(values[key]) for key in _COMMON},
    )


def _signal(section: SignalSection) -> list[AccountConfig]:
    """Resolve `[channels.signal]`: no secret (signal-cli holds the keys), the number and URL."""
    # Each account is its own number: a named account does not inherit the table's.
    accounts = _account_values(section, ("account",), False)
    return [
        AccountConfig(
            channel="signal",
            account_id=name,
            secret=None,
            secret_source="no credential (signal-cli holds the account's keys)",
            options={
                "account": values["account"],
                "http_url": values["http_url"].rstrip("/"),
                "attachments_dir": values["attachments_dir"],
            },
            **{key: _frozen(values[key]) for key in _COMMON},
        )
        for name, values in accounts
    ]


DISCORD_TOKEN_ENV: Final = "CLAWGATE_DISCORD_BOT_TOKEN"


def _discord(
    section: DiscordSection, home: Path, environ: Mapping[str, str]
) -> list[AccountConfig]:
    """Resolve `[channels.discord]`: the bot token as the secret."""
    accounts = _account_values(section, _SECRET_KEYS, bool(environ.get(DISCORD_TOKEN_ENV)))
    resolved = []
    for name, values in accounts:
        default_env = DISCORD_TOKEN_ENV if name == DEFAULT_ACCOUNT else None
        secret, source = _secret(values, home, environ, default_env)
        resolved.append(
            AccountConfig(
                channel="discord",
                account_id=name,
                secret=secret,
                secret_source=source,
                options={"api_base": values["api_base"].rstrip("/")},
                **{key: _frozen(values[key]) for key in _COMMON},
            )
        )
    return resolved


def _frozen(value: Any) -> Any:
    return tuple(str(v) for v in value) if isinstance(value, list) else value


def resolve_accounts(
    section: ChannelsSection, home: Path, environ: Mapping[str, str] | None = None
) -> ChannelSettings:
    """Return every configured channel account, in config order."""
    env = os.environ if environ is None else environ
    accounts: list[AccountConfig] = []
    if section.telegram is not None:
        accounts += _telegram(section.telegram, home, env)
    if section.irc is not None:
        accounts += _irc(section.irc, home, env)
    if section.matrix is not None:
        accounts += _matrix(section.matrix, home, env)
    if section.slack is not None:
        accounts += _slack(section.slack, home, env)
    if section.discord is not None:
        accounts += _discord(section.discord, home, env)
    if section.imessage is not None:
        accounts += _imessage(section.imessage, home, env)
    if section.whatsapp is not None:
        accounts += _whatsapp(section.whatsapp, home, env)
    if section.signal is not None:
        accounts += _signal(section.signal)
    return ChannelSettings(tuple(accounts), section.required_for_ready)
