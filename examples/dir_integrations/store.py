"""Integration handlers that keep their state in a directory, and the plugin wiring them up.

Layout under the root::

    <root>/<id>/manifest.json   the manifest as installed
    <root>/<id>/config.json     non-secret config only
    <root>/<id>/state.json      {version, configHash, revision, configFileHash, status}
    <root>/<id>/ACTIVE          present while the integration is active
    <root>/touched/<name>       files written by the ``dir.touch`` command
    <root>/.executed            one JSON line per executed commandId, with its result
    <root>/.journal             one JSON line per integration.* call that changed something

Secret values are held in memory only and never written. Every operation is idempotent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from clawgate.integrations import ManifestError, validate_manifest
from clawgate.plugin import Plugin, PluginError

__all__ = ["PLUGIN_NAME", "DirIntegrations", "build_plugin"]

PLUGIN_NAME: Final = "dir-integrations"
PLUGIN_VERSION: Final = "1.0.0"
_ID_RE: Final = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_FILE_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_EXECUTED: Final = ".executed"
_TOUCHED: Final = "touched"


def _canonical(value: Any) -> bytes:
    """Return canonical JSON (sorted keys, no whitespace, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hash(value: Any) -> str:
    """Return the spec's ``sha256:<hex>`` hash of a JSON value."""
    return "sha256:" + hashlib.sha256(_canonical(value)).hexdigest()


def _write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (temp file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(_canonical(value) + b"\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(path.read_bytes())


class DirIntegrations:
    """The ``integration.*`` and ``command.execute`` handlers, backed by one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._secrets: dict[str, dict[str, str]] = {}
        self._exec_lock = asyncio.Lock()

    # -- helpers --------------------------------------------------------------

    def _dir(self, params: Mapping[str, Any], key: str = "integrationId") -> Path:
        ident = params.get(key)
        if not isinstance(ident, str) or not _ID_RE.match(ident):
            raise PluginError("INVALID_PARAMS", f"{key} must match {_ID_RE.pattern}")
        return self.root / ident

    def _installed(self, params: Mapping[str, Any]) -> Path:
        d = self._dir(params)
        if not (d / "state.json").is_file():
            raise PluginError("NOT_FOUND", f"integration {d.name} is not installed")
        return d

    def _secret_fields(self, d: Path) -> tuple[str, ...]:
        try:
            return validate_manifest(_read_json(d / "manifest.json")).secret_fields()
        except (OSError, ValueError):
            return ()

    def _write_config(
        self, d: Path, config: Any, secret_fields: tuple[str, ...], secrets: Any
    ) -> str:
        """Write config.json without secret fields, keep secrets in memory; return file hash."""
        if not isinstance(config, Mapping):
            raise PluginError("INVALID_CONFIG", "config must be an object")
        plain = {k: v for k, v in config.items() if k not in secret_fields}
        _write_json(d / "config.json", plain)
        if isinstance(secrets, Mapping):
            self._secrets[d.name] = {k: v for k, v in secrets.items() if isinstance(v, str)}
        held = self._secrets.get(d.name, {})
        # Only the names are written, so a restarted plugin knows which values it lost.
        self._update_state(d, secretNames=sorted(held))
        return _hash(plain)

    def _update_state(self, d: Path, **changes: Any) -> dict[str, Any]:
        path = d / "state.json"
        state: dict[str, Any] = _read_json(path) if path.is_file() else {}
        state.update(changes)
        _write_json(path, state)
        return state

    def _journal(self, op: str, ident: str, **fields: Any) -> None:
        """Append one line to the journal, so the order of operations can be seen on disk."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".journal").open("ab") as journal:
            journal.write(_canonical({"op": op, "id": ident, **fields}) + b"\n")

    def _status(self, d: Path, state: Mapping[str, Any]) -> str:
        if (d / "ACTIVE").exists():
            return "active"
        return "inactive" if state.get("status") == "inactive" else "installed"

    # -- integration.* ----------------------------------------------------------

    async def install(self, params: dict[str, Any]) -> dict[str, Any]:
        """Write manifest, config and state; an upgrade is the same operation."""
        d = self._dir(params)
        try:
            manifest = validate_manifest(params.get("manifest") or {})
        except ManifestError as exc:
            raise PluginError(
                "INVALID_MANIFEST", "manifest is invalid", details={"errors": exc.errors}
            ) from None
        if manifest.id != d.name:
            raise PluginError("INVALID_MANIFEST", "manifest id differs from integrationId")
        version = params.get("version", manifest.version)
        d.mkdir(parents=True, exist_ok=True)
        _write_json(d / "manifest.json", manifest.to_dict())
        file_hash = self._write_config(
            d, params.get("config", {}), manifest.secret_fields(), params.get("secrets")
        )
        self._update_state(
            d,
            version=version,
            configHash=params.get("configHash"),
            revision=params.get("revision"),
            configFileHash=file_hash,
        )
        previous = params.get("previousVersion")
        self._journal("upgrade" if previous else "install", d.name, version=version)
        return {"status": "installed", "version": version}

    async def configure(self, params: dict[str, Any]) -> dict[str, Any]:
        """Rewrite config.json and record the new configHash."""
        d = self._installed(params)
        file_hash = self._write_config(
            d, params.get("config", {}), self._secret_fields(d), params.get("secrets")
        )
        changes: dict[str, Any] = {"configHash": params.get("configHash")}
        changes["configFileHash"] = file_hash
        self._update_state(d, **changes)
        self._journal("configure", d.name)
        return {"status": "configured"}

    async def activate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Create the ACTIVE marker."""
        d = self._installed(params)
        if not (d / "ACTIVE").exists():
            (d / "ACTIVE").touch()
            self._journal("activate", d.name)
        self._update_state(d, status="active")
        return {"status": "active"}

    async def deactivate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Remove the ACTIVE marker; deactivating an absent integration succeeds."""
        d = self._dir(params)
        if (d / "ACTIVE").exists():
            (d / "ACTIVE").unlink()
            self._journal("deactivate", d.name)
        if (d / "state.json").is_file():
            self._update_state(d, status="inactive")
        return {"status": "inactive"}

    async def remove(self, params: dict[str, Any]) -> dict[str, Any]:
        """Delete the integration's directory and forget its secrets."""
        d = self._dir(params)
        if d.exists():
            shutil.rmtree(d)
            self._journal("remove", d.name)
        self._secrets.pop(d.name, None)
        return {"status": "removed"}

    def _ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _ID_RE.match(p.name) and p.is_dir())

    def _check(self, ident: str) -> dict[str, Any]:
        d = self.root / ident
        try:
            manifest = _read_json(d / "manifest.json")
            config = _read_json(d / "config.json")
            state = _read_json(d / "state.json")
        except FileNotFoundError as exc:
            return {"id": ident, "healthy": False, "detail": f"missing {Path(exc.filename).name}"}
        except (OSError, ValueError):
            return {"id": ident, "healthy": False, "detail": "unreadable state files"}
        if manifest.get("id") != ident:
            return {"id": ident, "healthy": False, "detail": "manifest id mismatch"}
        if state.get("configFileHash") != _hash(config):
            return {"id": ident, "healthy": False, "detail": "config.json changed on disk"}
        return {"id": ident, "healthy": True}

    async def health(self, params: dict[str, Any]) -> dict[str, Any]:
        """Report each integration healthy when its files exist and agree."""
        ids = params.get("integrationIds")
        wanted = [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else self._ids()
        return {"integrations": [self._check(i) for i in wanted]}

    async def list_integrations(self, params: dict[str, Any]) -> dict[str, Any]:
        """List what the directory holds."""
        out = []
        for ident in self._ids():
            d = self.root / ident
            try:
                state = _read_json(d / "state.json")
            except (OSError, ValueError):
                continue
            lost = set(state.get("secretNames", [])) - set(self._secrets.get(ident, {}))
            out.append(
                {
                    "id": ident,
                    "version": state.get("version"),
                    "status": self._status(d, state),
                    "configHash": state.get("configHash"),
                    "secretsLoaded": not lost,
                }
            )
        return {"integrations": out}

    def secrets_for(self, ident: str) -> dict[str, str]:
        """Return the secret values held for an integration (memory only)."""
        return dict(self._secrets.get(ident, {}))

    # -- command.execute -----------------------------------------------------------

    def _executed(self) -> dict[str, Any]:
        path = self.root / _EXECUTED
        done: dict[str, Any] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    done[rec["commandId"]] = rec.get("result")
        return done

    async def execute(self, params: dict[str, Any]) -> dict[str, Any]:
        """Run a command at most once per commandId."""
        command_id = params.get("commandId")
        if not isinstance(command_id, str) or not command_id:
            raise PluginError("INVALID_PARAMS", "commandId must be a non-empty string")
        # Check and record under one lock, or two deliveries of one id could both run.
        async with self._exec_lock:
            done = self._executed()
            if command_id in done:
                return {"result": done[command_id]}
            result = self._run_command(params.get("name"), params.get("params") or {})
            self.root.mkdir(parents=True, exist_ok=True)
            with (self.root / _EXECUTED).open("a") as f:
                f.write(json.dumps({"commandId": command_id, "result": result}) + "\n")
                f.flush()
                os.fsync(f.fileno())
            return {"result": result}

    def _run_command(self, name: Any, params: Mapping[str, Any]) -> Any:
        if name != "dir.touch":
            raise PluginError("METHOD_NOT_FOUND", f"unknown command {name!r}")
        fname = params.get("name")
        if not isinstance(fname, str) or not _FILE_RE.match(fname):
            raise PluginError("INVALID_PARAMS", f"params.name must match {_FILE_RE.pattern}")
        content = params.get("content", "")
        if not isinstance(content, str):
            raise PluginError("INVALID_PARAMS", "params.content must be a string")
        target = self.root / _TOUCHED / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return {"path": str(target), "bytes": len(content.encode())}


def build_plugin(store: DirIntegrations, **kwargs: Any) -> Plugin:
    """Return a ``Plugin`` whose handlers are ``store``'s methods."""
    plugin = Plugin(PLUGIN_NAME, version=PLUGIN_VERSION, capabilities=["integrations"], **kwargs)
    plugin.handler("integration.install")(store.install)
    plugin.handler("integration.configure")(store.configure)
    plugin.handler("integration.activate")(store.activate)
    plugin.handler("integration.deactivate")(store.deactivate)
    plugin.handler("integration.remove")(store.remove)
    plugin.handler("integration.health")(store.health)
    plugin.handler("integration.list")(store.list_integrations)
    plugin.handler("command.execute")(store.execute)
    return plugin
