"""The reconciler's pure decisions: ordering, owners, steps and retry delays (spec §5.4 to §5.7).

Nothing here does I/O or reads a clock; the engine feeds in the desired entries, ledger
items and live plugins, and carries out what comes back.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from .desired import DesiredEntry
from .errors import DEPENDENCY_CYCLE, DEPENDENCY_MISSING, ReconcileError
from .ledger import LedgerItem

__all__ = [
    "Ordering",
    "OwnerChoice",
    "PluginInfo",
    "Step",
    "order_desired",
    "order_removals",
    "pick_owner",
    "retry_delay_ms",
    "steps_for",
]

RETRY_BASE_MS: Final = 30_000
RETRY_CAP_MS: Final = 30 * 60_000


class Step(enum.StrEnum):
    """One plugin call the engine makes for an item, in the order of spec §5.4's table."""

    INSTALL = "install"
    UPGRADE = "upgrade"
    CONFIGURE = "configure"
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """A live plugin as routing sees it; ``order`` grows with each registration."""

    name: str
    capabilities: frozenset[str]
    order: int


@dataclass(frozen=True, slots=True)
class Ordering:
    """Desired ids in dependency order, and the ids whose dependencies can never be met."""

    apply: list[str]
    broken: dict[str, ReconcileError]


@dataclass(frozen=True, slots=True)
class OwnerChoice:
    """Who hosts an item now, and a previous owner to remove it from first (a new pin)."""

    owner: str | None
    remove_from: str | None = None


def order_desired(entries: Mapping[str, DesiredEntry]) -> Ordering:
    """Order desired ids so dependencies come first; flag unknown dependencies and cycles."""
    broken: dict[str, ReconcileError] = {}
    for entry in entries.values():
        missing = [dep for dep in entry.depends_on if dep not in entries]
        if missing:
            broken[entry.id] = ReconcileError(
                DEPENDENCY_MISSING,
                f"{entry.id} depends on {', '.join(missing)}, which the desired state lacks",
                retryable=False,
                details={"missing": missing},
            )
    graph = {entry.id: tuple(entry.depends_on) for entry in entries.values()}
    ordered, left = _topological(graph)
    cycle = _cycle_members(graph, left)
    for item_id in sorted(cycle):
        broken[item_id] = ReconcileError(
            DEPENDENCY_CYCLE,
            f"{item_id} is part of a depends_on cycle ({', '.join(sorted(cycle))})",
            retryable=False,
            details={"cycle": sorted(cycle)},
        )
    # Items that only depend on a cycle stay in the order; their dependency never gets ready.
    return Ordering(ordered + [item_id for item_id in graph if item_id in left], broken)


def order_removals(items: Iterable[LedgerItem]) -> list[str]:
    """Order ledger items to remove so that dependants go before their dependencies."""
    chosen = {item.id: item for item in items}
    graph = {item.id: tuple(d for d in item.depends_on if d in chosen) for item in chosen.values()}
    ordered, left = _topological(graph)
    return list(reversed(ordered)) + [item_id for item_id in graph if item_id in left]


def pick_owner(
    entry: DesiredEntry, item: LedgerItem | None, plugins: Sequence[PluginInfo]
) -> OwnerChoice:
    """Choose the plugin that hosts ``entry`` (spec §2.9).

    Ownership is sticky: a live recorded owner that still qualifies keeps it, an offline one
    is waited for. A pin (``entry.plugin``) wins; if it names another plugin than the recorded
    owner, the item moves. Returns ``owner=None`` when nobody live can take it now.
    """
    needed = set(entry.capabilities)
    live = {plugin.name: plugin for plugin in plugins}
    recorded = item.owner if item is not None and item.installed else None
    if entry.plugin is not None:
        pinned = live.get(entry.plugin)
        owner = entry.plugin if pinned is not None and needed <= pinned.capabilities else None
        moving = recorded is not None and recorded != entry.plugin
        return OwnerChoice(owner, remove_from=recorded if moving and owner else None)
    if recorded is not None:
        holder = live.get(recorded)
        if holder is None:
            return OwnerChoice(None)  # offline owner: wait for it
        if needed <= holder.capabilities:
            return OwnerChoice(recorded)
    qualifying = [plugin for plugin in plugins if needed <= plugin.capabilities]
    if not qualifying:
        return OwnerChoice(None)
    newest = max(qualifying, key=lambda plugin: plugin.order)
    # A recorded owner that lost the capabilities gives the item up (§2.9); it is not asked
    # to remove it, since it no longer speaks for that integration.
    return OwnerChoice(newest.name)


def steps_for(entry: DesiredEntry, item: LedgerItem, *, secrets_changed: bool) -> list[Step]:
    """Return the calls that take ``item`` to ``entry`` (spec §5.4), in table order."""
    steps: list[Step] = []
    if not item.installed:
        steps.append(Step.INSTALL)
    elif item.spec_hash != entry.spec_hash:
        steps.append(Step.UPGRADE)
    elif item.config_hash != entry.config_hash or secrets_changed:
        steps.append(Step.CONFIGURE)
    reinstalled = bool(steps) and steps[0] in (Step.INSTALL, Step.UPGRADE)
    if entry.enabled and (not item.active or reinstalled):
        steps.append(Step.ACTIVATE)
    elif not entry.enabled and item.active:
        steps.append(Step.DEACTIVATE)
    return steps


def retry_delay_ms(attempts: int, jitter: float) -> int:
    """Return the delay before retry number ``attempts`` (≥ 1); ``jitter`` is in [0.8, 1.2]."""
    base = min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** max(0, attempts - 1))
    return int(base * jitter)


def _topological(graph: Mapping[str, tuple[str, ...]]) -> tuple[list[str], set[str]]:
    """Kahn's algorithm, stable in ``graph`` order; returns the order and the ids left over."""
    pending = {node: {dep for dep in deps if dep in graph} for node, deps in graph.items()}
    ordered: list[str] = []
    progress = True
    while progress:
        progress = False
        for node in graph:
            deps = pending.get(node)
            if deps is not None and not deps:
                ordered.append(node)
                del pending[node]
                for rest in pending.values():
                    rest.discard(node)
                progress = True
    return ordered, set(pending)


def _cycle_members(graph: Mapping[str, tuple[str, ...]], left: set[str]) -> set[str]:
    """Return the ids in ``left`` that can reach themselves through ``depends_on``."""
    members: set[str] = set()
    for start in left:
        seen: set[str] = set()
        stack = [dep for dep in graph[start] if dep in left]
        while stack:
            node = stack.pop()
            if node == start:
                members.add(start)
                break
            if node in seen:
                continue
            seen.add(node)
            stack.extend(dep for dep in graph[node] if dep in left)
    return members
