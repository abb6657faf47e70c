"""Config methods: read redacted, replace or merge-patch with `baseHash`, schema (spec §10.9)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field

from ... import __version__
from ...config import SECRET_KEYS, ClawgateConfig
from ...config_file import (
    apply_merge_patch,
    config_hash,
    read_snapshot,
    redact_data,
    redact_raw,
    restart_required,
    restore_secrets,
    validate_raw,
    write_config,
)
from ...config_file import dumps as dumps_document
from ...protocol.detail_codes import BASE_HASH_MISMATCH, INVALID_CONFIG, RATE_LIMITED
from ...protocol.errors import InvalidRequest, Unavailable
from ...protocol.nesting import (
    is_depth_error,
    nesting_error,
    nesting_exceeds,
    text_nesting_exceeds,
)
from ...protocol.scopes import ADMIN, READ
from ...protocol.timefmt import format_time_ms
from ..context import CallContext
from ..registry import method
from ._common import Ignored, Params, Result

__all__ = [
    "config_get",
    "config_patch",
    "config_schema",
    "config_schema_lookup",
    "config_set",
    "schema_lookup",
]

logger = logging.getLogger(__name__)


class ConfigGetParams(Params):
    """Params of `config.get` and `config.schema`."""


class ConfigSetParams(Params):
    """Params of `config.set`: the whole new file."""

    raw: str
    baseHash: str | None = None
    note: str | None = None


class ConfigPatchParams(Params):
    """Params of `config.patch`: a JSON merge patch in `raw`."""

    raw: str
    baseHash: str | None = None
    note: str | None = None
    restartDelayMs: Annotated[int, Field(ge=0)] | None = None
    sessionKey: str | None = None
    deliveryContext: Ignored = None
    replacePaths: Ignored = None


class ConfigIssue(Result):
    """One validation problem."""

    path: str
    message: str


class ConfigGetResult(Result):
    """Result of `config.get`; every secret is redacted for every caller."""

    exists: bool
    format: Literal["toml"]
    raw: str
    parsed: dict[str, Any]
    valid: bool
    issues: list[ConfigIssue]
    hash: str
    path: str | None = None


class ConfigWriteResult(Result):
    """Result of `config.set` and `config.patch`."""

    ok: bool
    hash: str
    restartRequired: bool


def _config_path(ctx: CallContext) -> Path:
    path = ctx.services.config.path
    if path is None:
        raise Unavailable("this gateway runs without a config file; start it with a home")
    return path


@method("config.get", params=ConfigGetParams, result=ConfigGetResult, scope=READ)
async def config_get(ctx: CallContext, params: ConfigGetParams) -> dict[str, Any]:
    """Return the config file with every secret redacted."""
    path = _config_path(ctx)
    snapshot = await asyncio.to_thread(read_snapshot, path)
    result: dict[str, Any] = {
        "exists": snapshot.exists,
        "format": "toml",
        # An invalid file may hold a secret under a misspelt key: show none of it.
        "raw": redact_raw(snapshot.raw) if snapshot.config is not None else "",
        "parsed": redact_data(snapshot.data) if snapshot.config is not None else {},
        "valid": snapshot.config is not None,
        "issues": snapshot.issues,
        "hash": config_hash(snapshot.raw, ctx.services.config.hash_key),
    }
    if ctx.is_admin:
        result["path"] = str(path)
    return result


class ConfigSchemaResult(Result):
    """Result of `config.schema` (OpenClaw's shape)."""

    schema_: dict[str, Any] = Field(alias="schema")
    uiHints: dict[str, dict[str, Any]]
    version: str
    generatedAt: str


class SchemaLookupParams(Params):
    """Params of `config.schema.lookup`: a dotted path such as `gateway.auth`."""

    path: Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z0-9_./\[\]\-*]+$")]


class SchemaChild(Result):
    """One property under the looked-up path."""

    key: str
    path: str
    type: str | list[str] | None = None
    required: bool
    hasChildren: bool


class SchemaLookupResult(Result):
    """Result of `config.schema.lookup`."""

    path: str
    schema_: dict[str, Any] = Field(alias="schema")
    hint: dict[str, Any] | None = None
    hintPath: str | None = None
    children: list[SchemaChild]


def _config_schema() -> dict[str, Any]:
    """Return the config model's JSON Schema with every `$ref` inlined."""
    schema = ClawgateConfig.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return inline(schema)  # type: ignore[no-any-return]


def _ui_hints() -> dict[str, dict[str, Any]]:
    """Return OpenClaw's per-path hints: the secret settings are marked sensitive."""
    return {".".join(path): {"sensitive": True} for path in SECRET_KEYS}


def _object_schema(node: dict[str, Any]) -> dict[str, Any] | None:
    """Return the object variant of `node` (an optional section is `anyOf [object, null]`)."""
    if "properties" in node:
        return node
    for option in node.get("anyOf", ()):
        if isinstance(option, dict) and "properties" in option:
            return option
    return None


def schema_lookup(schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    """Return the sub-schema at a dotted `path` and its children, or None when absent."""
    node = schema
    parts = [part for part in path.split(".") if part]
    for part in parts:
        holder = _object_schema(node)
        if holder is None or part not in holder["properties"]:
            return None
        node = holder["properties"][part]
    holder = _object_schema(node) or {"properties": {}}
    required = set(holder.get("required", ()))
    children = []
    for key, child in holder["properties"].items():
        entry: dict[str, Any] = {
            "key": key,
            "path": ".".join([*parts, key]),
            "required": key in required,
            "hasChildren": _object_schema(child) is not None,
        }
        if "type" in child:
            entry["type"] = child["type"]
        children.append(entry)
    result: dict[str, Any] = {"path": path, "schema": node, "children": children}
    hint = _ui_hints().get(".".join(parts))
    if hint is not None:
        result |= {"hint": hint, "hintPath": ".".join(parts)}
    return result


@method("config.schema", params=ConfigGetParams, result=ConfigSchemaResult, scope=READ)
def config_schema(ctx: CallContext, params: ConfigGetParams) -> dict[str, Any]:
    """Return the config model's JSON Schema, OpenClaw's hints and the server version."""
    return {
        "schema": _config_schema(),
        "uiHints": _ui_hints(),
        "version": __version__,
        "generatedAt": format_time_ms(ctx.services.info.started_ms),
    }


@method("config.schema.lookup", params=SchemaLookupParams, result=SchemaLookupResult, scope=READ)
def config_schema_lookup(ctx: CallContext, params: SchemaLookupParams) -> dict[str, Any]:
    """Return the part of the config schema at `path` (`.` for the root) and its children."""
    path = "" if params.path == "." else params.path
    found = schema_lookup(_config_schema(), path)
    if found is None:
        raise InvalidRequest(f'config schema path not found: {params.path}; try "." for the root')
    return found | {"path": params.path}


@method("config.set", params=ConfigSetParams, result=ConfigWriteResult, scope=ADMIN)
async def config_set(ctx: CallContext, params: ConfigSetParams) -> dict[str, Any]:
    """Replace the whole config file, keeping secrets sent back as the sentinel."""

    def build(current_raw: str) -> Any:
        import tomlkit
        from tomlkit.exceptions import TOMLKitError

        # tomlkit and tomllib recurse per level: refuse a bomb before either sees it.
        if text_nesting_exceeds(params.raw):
            raise InvalidRequest(f"config.set raw is {nesting_error()}")
        try:
            return tomlkit.parse(params.raw)
        except TOMLKitError as exc:
            raise _invalid([{"path": "", "message": f"not valid TOML: {exc}"}]) from None

    return await _write(ctx, params.baseHash, params.note, build)


@method("config.patch", params=ConfigPatchParams, result=ConfigWriteResult, scope=ADMIN)
async def config_patch(ctx: CallContext, params: ConfigPatchParams) -> dict[str, Any]:
    """Apply a JSON merge patch (RFC 7386; null deletes) to the config file."""

    def build(current_raw: str) -> Any:
        import tomlkit

        try:
            patch = orjson.loads(params.raw)
        except orjson.JSONDecodeError as exc:
            if is_depth_error(exc):
                raise InvalidRequest(f"config.patch raw is {nesting_error()}") from None
            patch = None
        if not isinstance(patch, dict):
            raise InvalidRequest("config.patch raw must be the JSON text of an object")
        # The merge patch recurses per level: bounded here, before it runs.
        if nesting_exceeds(patch):
            raise InvalidRequest(f"config.patch raw is {nesting_error()}")
        return apply_merge_patch(tomlkit.parse(current_raw), patch)

    return await _write(ctx, params.baseHash, params.note, build)


def _invalid(issues: list[dict[str, str]]) -> InvalidRequest:
    return InvalidRequest(
        "config is invalid; fix the listed issues and try again",
        details={"code": INVALID_CONFIG, "issues": issues},
    )


async def _write(
    ctx: CallContext, base_hash: str | None, note: str | None, build: Any
) -> dict[str, Any]:
    _config_path(ctx)
    caller = ctx.caller
    limiter_key = f"{caller.device_id or caller.conn_id}|{caller.remote_ip}"
    # One writer at a time, so the rate limit, the baseHash check and the write cannot
    # interleave; a client that leaves mid-write must not skip applying what was written.
    return await asyncio.shield(_write_locked(ctx, base_hash, note, build, limiter_key))


async def _write_locked(
    ctx: CallContext, base_hash: str | None, note: str | None, build: Any, limiter_key: str
) -> dict[str, Any]:
    service = ctx.services.config
    path = _config_path(ctx)
    async with service.lock:
        now = ctx.services.clock()
        wait_ms = service.writes.retry_after_ms(limiter_key, now)
        if wait_ms:
            raise Unavailable(
                "too many config writes; wait and retry",
                details={"code": RATE_LIMITED},
                retryable=True,
                retry_after_ms=wait_ms,
            )
        snapshot = await asyncio.to_thread(read_snapshot, path)
        current_hash = config_hash(snapshot.raw, service.hash_key)
        if base_hash is not None and base_hash != current_hash:
            raise InvalidRequest(
                "config changed since it was read; call config.get again",
                details={"code": BASE_HASH_MISMATCH, "currentHash": current_hash},
            )

        def render() -> tuple[str, ClawgateConfig | None, list[dict[str, str]]]:
            document = build(snapshot.raw)
            restore_secrets(document, snapshot.data)
            text = dumps_document(document)
            _, new_config, issues = validate_raw(text)
            return text, new_config, issues

        # Parsing, patching and validating a large document is CPU work: off the loop, so
        # `/healthz` and every other socket keep being served meanwhile.
        text, new_config, issues = await asyncio.to_thread(render)
        if new_config is not None:
            issues = service.secret_issues(new_config)
        if new_config is None or issues:
            raise _invalid(issues)
        service.writes.record(limiter_key, now)
        await asyncio.to_thread(write_config, path, text)
        old_config = snapshot.config or ClawgateConfig()
        needs_restart = restart_required(old_config, new_config)
        logger.info(
            "config written by %s%s (restart required: %s)",
            ctx.caller.conn_id,
            f", note: {note!r}" if note else "",
            needs_restart,
        )
        service.apply(new_config, changed_by=ctx.caller)
        return {
            "ok": True,
            "hash": config_hash(text, service.hash_key),
            "restartRequired": needs_restart,
        }
