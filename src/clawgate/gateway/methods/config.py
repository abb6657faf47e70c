"""Config methods: read redacted, replace or merge-patch with `baseHash`, schema (spec §10.9)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field

from ...config import ClawgateConfig
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
from ...protocol.scopes import ADMIN, READ
from ..config_service import ConfigService
from ..context import CallContext
from ..registry import method
from ._common import Ignored, Params, Result

__all__ = ["config_get", "config_patch", "config_schema", "config_set"]

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


@method("config.schema", params=ConfigGetParams, result=dict[str, Any], scope=READ)
def config_schema(ctx: CallContext, params: ConfigGetParams) -> dict[str, Any]:
    """Return the JSON Schema of the config file's model."""
    return ClawgateConfig.model_json_schema()


@method("config.set", params=ConfigSetParams, result=ConfigWriteResult, scope=ADMIN)
async def config_set(ctx: CallContext, params: ConfigSetParams) -> dict[str, Any]:
    """Replace the whole config file, keeping secrets sent back as the sentinel."""

    def build(current_raw: str) -> Any:
        import tomlkit
        from tomlkit.exceptions import TOMLKitError

        try:
            return tomlkit.parse(params.raw)
        except TOMLKitError as exc:
            raise _invalid([{"path": "", "message": f"not valid TOML: {exc}"}]) from None

    return await _write(ctx, params.baseHash, params.note, build)


@method("config.patch", params=ConfigPatchParams, result=ConfigWriteResult, scope=ADMIN)
async def config_patch(ctx: CallContext, params: ConfigPatchParams) -> dict[str, Any]:
    """Apply a JSON merge patch (RFC 7386; null deletes) to the config file."""
    try:
        patch = orjson.loads(params.raw)
    except orjson.JSONDecodeError:
        patch = None
    if not isinstance(patch, dict):
        raise InvalidRequest("config.patch raw must be the JSON text of an object")

    def build(current_raw: str) -> Any:
        import tomlkit

        return apply_merge_patch(tomlkit.parse(current_raw), patch)

    return await _write(ctx, params.baseHash, params.note, build)


def _invalid(issues: list[dict[str, str]]) -> InvalidRequest:
    return InvalidRequest(
        "config is invalid; fix the listed issues and try again",
        details={"code": INVALID_CONFIG, "issues": issues},
    )


def _secret_issues(config: ClawgateConfig, service: ConfigService) -> list[dict[str, str]]:
    """A secret-based auth mode needs its secret somewhere the gateway can read."""
    auth = config.gateway.auth
    if service.auth_pinned:
        return []
    if auth.mode.value == "token" and not auth.token:
        return [{"path": "gateway.auth.token", "message": "token auth needs a token"}]
    if auth.mode.value == "password" and not auth.password:
        return [{"path": "gateway.auth.password", "message": "password auth needs a password"}]
    return []


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
        document = build(snapshot.raw)
        restore_secrets(document, snapshot.data)
        text = dumps_document(document)
        _, new_config, issues = validate_raw(text)
        if new_config is not None:
            issues = _secret_issues(new_config, service)
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
