"""The self-hostable hub: the control link for daemons and the operator HTTP API (spec §7).

``HubServer`` composes three small seams so that scale-out is an adapter, not a rewrite:
``HubStore`` (durable state; ``clawgate.store.hub_db.SqliteHubStore`` for one instance),
``HubBus`` (wake-ups; ``LocalBus`` in process) and ``SecretVault`` (AES-GCM at rest, or memory
only).
"""

from .bus import HubBus, LocalBus, Subscription
from .server import HubServer
from .settings import HubSettings, HubSettingsError, load_settings
from .store import HubLocked, HubStore, HubStoreError, RevisionConflict
from .vault import EncryptedVault, MemoryVault, SecretVault

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
