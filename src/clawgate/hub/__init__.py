"""The self-hostable hub: the control link for daemons and the operator HTTP API (spec §7).

``HubServer`` composes three small seams: ``HubStore`` (durable state: ``SqliteHubStore`` on
``hub.db`` for one instance, PostgreSQL through ``repo_store.postgres_store`` for several),
``HubBus`` (wake-ups: ``LocalBus`` in process, ``nats_bus.NatsBus`` between instances) and
``SecretVault`` (AES-GCM at rest, or memory only). See docs/hub-scale-out.md.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bus import HubBus, LocalBus, Subscription
    from .server import HubServer
    from .settings import HubSettings, HubSettingsError, load_settings
    from .store import HubLocked, HubStore, HubStoreError, RevisionConflict
    from .vault import EncryptedVault, MemoryVault, SecretVault

# Loaded on first use: every `clawgate` command imports the CLI's hub group, and the server
# side (aiohttp app, jsonschema, cryptography) should cost nothing to the other commands.
_HOMES = {
    "HubBus": "bus",
    "LocalBus": "bus",
    "Subscription": "bus",
    "HubServer": "server",
    "HubSettings": "settings",
    "HubSettingsError": "settings",
    "load_settings": "settings",
    "HubLocked": "store",
    "HubStore": "store",
    "HubStoreError": "store",
    "RevisionConflict": "store",
    "EncryptedVault": "vault",
    "MemoryVault": "vault",
    "SecretVault": "vault",
}


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


__all__ = [
    "EncryptedVault",
    "HubBus",
    "HubLocked",
    "HubServer",
    "HubSettings",
    "HubSettingsError",
    "HubStore",
    "HubStoreError",
    "LocalBus",
    "MemoryVault",
    "RevisionConflict",
    "SecretVault",
    "Subscription",
    "load_settings",
]
