"""`clawgate config …`: inspect and edit `config.toml` without losing its comments."""

from __future__ import annotations

import tomllib
from typing import Annotated, Any

import typer

from ..config import ClawgateConfig, ConfigError, load_config, with_env_overrides
from ..config_file import (
    read_snapshot,
    redact_data,
    redact_raw,
    validate_raw,
    write_config,
)
from ..service.paths import HomeError, Paths, resolve_home
from ._common import console, fail, load_paths_and_config, print_json

__all__ = ["app"]

app = typer.Typer(help="Inspect and edit config.toml.", no_args_is_help=True)


def _paths() -> Paths:
    try:
        return Paths(resolve_home())
    except HomeError as exc:
        fail(str(exc), 2)


def _dotted_keys(value: Any, prefix: str = "") -> list[str]:
    """Return every dotted key in a config dump: tables and the values in them."""
    if not isinstance(value, dict):
        return []
    keys: list[str] = []
    for name, inner in value.items():
        key = f"{prefix}{name}"
        keys += [key, *_dotted_keys(inner, f"{key}.")]
    return keys


def _unknown_key(key: str, known: list[str]) -> str:
    """Return the error for an unknown key, with the closest known keys when there are any."""
    import difflib

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    if close:
        return f"unknown key '{key}'; did you mean {close[0]}?"
    return f"unknown key '{key}'; see `clawgate config show --json` for the keys"


def _parse_value(text: str) -> Any:
    """Read VALUE as a TOML value (42, true, ["a"]), else as a plain string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _defaults() -> dict[str, Any]:
    return ClawgateConfig().model_dump(mode="json")


@app.command("path")
def path() -> None:
    """Print where the config file lives."""
    print(_paths().config)


@app.command("show")
def show(
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the effective config.")
    ] = False,
) -> None:
    """Print the config file with every secret redacted (`--json`: the effective config)."""
    paths = _paths()
    if json_output:
        try:
            config = with_env_overrides(load_config(paths.config))
        except ConfigError as exc:
            fail(str(exc), 2)
        print_json(redact_data(config.model_dump(mode="json")), compact=False)
        return
    snapshot = read_snapshot(paths.config)
    if not snapshot.exists:
        console.print(f"# {paths.config} does not exist: every setting has its default")
        return
    print(redact_raw(snapshot.raw), end="")


@app.command("get")
def get(key: Annotated[str, typer.Argument(help="Dotted key, e.g. gateway.port.")]) -> None:
    """Print one setting's effective value (secrets too: you asked for them by name)."""
    try:
        config = with_env_overrides(load_config(_paths().config))
    except ConfigError as exc:
        fail(str(exc), 2)
    dump: Any = config.model_dump(mode="json")
    value = dump
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            fail(_unknown_key(key, _dotted_keys(dump)), 2)
        value = value[part]
    if isinstance(value, dict | list):
        print_json(value, compact=True)
    elif value is None:
        print("")
    else:
        print(str(value).lower() if isinstance(value, bool) else value)


@app.command("set")
def set_(
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. gateway.port.")],
    value: Annotated[str, typer.Argument(help="A TOML value; bare words are strings.")],
) -> None:
    """Change one setting, keeping the file's comments; takes effect at the next start."""
    import tomlkit  # only this command edits TOML; others never load it
    from tomlkit.exceptions import TOMLKitError

    paths = _paths()
    snapshot = read_snapshot(paths.config)
    try:
        document = tomlkit.parse(snapshot.raw)
    except TOMLKitError as exc:
        fail(f"{paths.config}: not valid TOML ({exc}); fix it first", 2)
    parts = key.split(".")
    table: Any = document
    for part in parts[:-1]:
        if part not in table:
            table[part] = tomlkit.table()
        table = table[part]
        if not isinstance(table, dict):
            fail(f"'{part}' in '{key}' is a value, not a table", 2)
    table[parts[-1]] = _parse_value(value)
    text = tomlkit.dumps(document)
    _, config, issues = validate_raw(text)
    if config is None:
        issue = issues[0]
        if issue["message"] == "unknown key" and f"{key}.".startswith(f"{issue['path']}."):
            fail(f"cannot set '{key}': {_unknown_key(key, _dotted_keys(_defaults()))}", 2)
        fail(f"cannot set '{key}': {issue['path'] or key}: {issue['message']}", 2)
    paths.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_config(paths.config, text)
    console.print(f"set {key} in {paths.config}; restart the gateway to apply it", highlight=False)


@app.command("validate")
def validate() -> None:
    """Check the config as `gateway run` does (file mode too); exit 0 when valid, 2 otherwise."""
    from ..service.runtime import GatewayOverrides, check_startup  # only this command needs it

    paths, config = load_paths_and_config()
    try:
        check_startup(config, paths, GatewayOverrides(), generate=False)
    except ConfigError as exc:
        fail(str(exc), 2, error="CONFIG")
    console.print(f"{paths.config}: valid", highlight=False)
