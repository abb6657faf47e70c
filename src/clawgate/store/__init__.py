"""The state store: ``$CLAWGATE_HOME/state.db`` behind one owner thread (spec §1.6).

Only this package touches SQLite. ``StateStore`` owns the single connection on a dedicated
thread; everything else hands it functions through ``read``/``write`` (``submit_write``
returns the write's future instead, for a group commit that chains transactions on it).
Later repositories (devices, sessions, queue, ledger, ...) are built on those calls and add
their tables as new entries at the end of ``MIGRATIONS``.

Repositories read and write rows and JSON only (small row dataclasses defined here, dicts,
tuples): this package imports nothing but ``protocol`` and ``files``, and the packages above
it (commands, cloud, hub, ...) turn rows into their own records and back.

Example::

    store = StateStore(paths.state_db)
    report = await store.open()
    try:
        await store.write(lambda conn: conn.execute("INSERT INTO kv ..."))
    finally:
        await store.close()
"""

from ._errors import StoreClosedError, StoreError, StoreTooNewError
from ._health import StoreHealth, inspect_store
from ._migrations import MIGRATIONS, Migration
from ._state import THREAD_NAME, OpenReport, StateStore

__all__ = [
    "MIGRATIONS",
    "THREAD_NAME",
    "Migration",
    "OpenReport",
    "StateStore",
    "StoreClosedError",
    "StoreError",
    "StoreHealth",
    "StoreTooNewError",
    "inspect_store",
]
