"""Exec approvals inside the gateway: policies per node, requests to operators, decisions.

Invariants:
- A policy change (`exec.approvals.set`, an `allow-always` decision) is written to the store
  before the caller hears of it, and before the run it allows goes to the node.
- Every request that is opened is closed exactly once: by a decision, by expiry (denied), or
  by its caller going away (denied); each close broadcasts `exec.approval.resolved` and
  queues its `approval.history` row. The row is queued with `submit_write`, not awaited in
  `_close`: a close may run in a task being cancelled (the caller left), and a submitted
  write runs all the same. The operator who answered and the caller who timed out hear back
  only after their row is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..protocol.approval_history import (
    BY_GATEWAY,
    ApprovalOutcome,
    ClosedApproval,
    HistoryCursor,
    Resolver,
    history_command,
)
from ..protocol.detail_codes import APPROVAL_DENIED, APPROVAL_EXPIRED
from ..protocol.errors import Unavailable
from ..protocol.exec_approvals import (
    ApprovalBook,
    ExecDecision,
    ExecPolicy,
    ExecRequest,
    command_text,
)
from ..protocol.limits import APPROVAL_HISTORY_KEEP
from ..store import StateStore, StoreClosedError, approvals_repo, nodes_repo
from .broadcaster import Broadcaster

__all__ = ["ExecApprovals"]

logger = logging.getLogger(__name__)

DEFAULT_KEY = nodes_repo.DEFAULT_POLICY_KEY


class ExecApprovals:
    """Decide `system.run` requests by policy, and ask operators when the policy says so."""

    def __init__(
        self,
        store: StateStore | None,
        broadcaster: Broadcaster[Any],
        clock: Callable[[], int],
        ttl_ms: int,
    ) -> None:
        """Persist to `store`, announce through `broadcaster`; requests wait `ttl_ms`."""
        self._store = store
        self._broadcaster = broadcaster
        self._clock = clock
        self.book = ApprovalBook(ttl_ms)
        self.policies: dict[str, ExecPolicy] = {}
        self._waiters: dict[str, asyncio.Future[str]] = {}

    async def load(self) -> None:
        """Read the stored policies."""
        if self._store is not None:
            self.policies = await self._store.read(nodes_repo.load_exec_policies)

    # -- policies -----------------------------------------------------------------

    def policy_for(self, node_id: str | None) -> tuple[ExecPolicy, bool]:
        """Return a node's policy (None: the default) and whether it is the node's own."""
        if node_id is not None and node_id in self.policies:
            return self.policies[node_id], True
        return self.policies.get(DEFAULT_KEY, ExecPolicy()), node_id is None

    async def set_policy(self, node_id: str | None, policy: ExecPolicy) -> None:
        """Replace a node's (or the default) policy, persisted first."""
        key = node_id if node_id is not None else DEFAULT_KEY
        await self._save(key, policy)
        self.policies[key] = policy

    def forget_node(self, node_id: str) -> None:
        """Drop a removed node's own policy (the store row goes with the node's surface)."""
        self.policies.pop(node_id, None)

    async def _save(self, key: str, policy: ExecPolicy) -> None:
        if self._store is not None:
            await self._store.write(lambda conn: nodes_repo.save_exec_policy(conn, key, policy))

    # -- runs ---------------------------------------------------------------------

    async def authorize(
        self, node_id: str, argv: Sequence[str], cwd: str | None, requested_by: str
    ) -> None:
        """Return when `argv` may run on `node_id`; ask operators if the policy says so.

        Raises:
            Unavailable: the policy or an operator denied it, or nobody answered in time.
        """
        policy, _ = self.policy_for(node_id)
        decision = policy.decide(argv)
        if decision is ExecDecision.ALLOW:
            return
        text = command_text(argv)
        if decision is ExecDecision.DENY:
            logger.info("system.run on node %s refused by policy: %s", node_id[:16], text)
            raise Unavailable(
                f"system.run refused by the node's exec policy ({policy.mode.value}); "
                "an admin can change it with exec.approvals.set",
                details={"code": APPROVAL_DENIED},
            )
        request = self.book.open(node_id, argv, cwd, requested_by, self._clock())
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters[request.id] = waiter
        logger.info(
            "system.run on node %s waits for approval %s: %s", node_id[:16], request.id, text
        )
        self._broadcaster.broadcast("exec.approval.requested", request.payload())
        answer = "deny"
        try:
            async with asyncio.timeout(max(request.expires_at_ms - self._clock(), 0) / 1000):
                answer = await asyncio.shield(waiter)
        except TimeoutError:
            await _settled(
                self._close(request, "deny", None, ApprovalOutcome.EXPIRED, reason="expired")
            )
            raise Unavailable(
                "system.run was not approved in time; ask again and approve it",
                details={"code": APPROVAL_EXPIRED, "approvalId": request.id},
            ) from None
        finally:
            self._waiters.pop(request.id, None)
            if request.id in self.book.pending:  # the caller left: nobody is waiting now
                self._close(request, "deny", None, ApprovalOutcome.CANCELLED, reason="cancelled")
        if answer == "deny":
            raise Unavailable(
                "system.run was denied by an operator",
                details={"code": APPROVAL_DENIED, "approvalId": request.id},
            )

    async def resolve(
        self,
        request_id: str,
        decision: str,
        resolved_by: str | None,
        resolver: Resolver,
    ) -> ExecRequest:
        """Apply an operator's decision; `allow-always` is persisted before the run goes on.

        Returns once the decision's `approval.history` row is written.

        Raises:
            KeyError: unknown, expired or already resolved request.
        """
        request = self.book.pending[request_id]
        if decision == "allow-always":
            policy, _ = self.policy_for(request.node_id)
            await self._save_node_policy(
                request.node_id, policy.allowing(request.argv, self._clock())
            )
        # Checked again: the request may have expired during the write.
        request = self.book.resolve(request_id)
        written = self._close(
            request, decision, resolved_by, ApprovalOutcome(decision), resolver=resolver
        )
        waiter = self._waiters.get(request_id)
        if waiter is not None and not waiter.done():
            waiter.set_result("deny" if decision == "deny" else "allow")
        await _settled(written)
        return request

    async def _save_node_policy(self, node_id: str, policy: ExecPolicy) -> None:
        await self._save(node_id, policy)
        self.policies[node_id] = policy

    def _close(
        self,
        request: ExecRequest,
        decision: str,
        resolved_by: str | None,
        outcome: ApprovalOutcome,
        *,
        reason: str | None = None,
        resolver: Resolver = BY_GATEWAY,
    ) -> asyncio.Future[None] | None:
        self.book.pending.pop(request.id, None)
        now = self._clock()
        payload: dict[str, Any] = {
            "id": request.id,
            "nodeId": request.node_id,
            "decision": decision,
            "resolvedBy": resolved_by,
            "ts": now,
        }
        if reason is not None:
            payload["reason"] = reason
        logger.info(
            "exec approval %s resolved: %s (%s)", request.id, decision, reason or "operator"
        )
        self._broadcaster.broadcast("exec.approval.resolved", payload)
        return self._record(
            ClosedApproval(
                id=request.id,
                node_id=request.node_id,
                command=history_command(request.argv),
                requested_by=request.requested_by,
                outcome=outcome,
                resolver_kind=resolver.kind,
                resolver_id=resolver.id,
                resolved_by=resolved_by,
                created_at_ms=request.created_at_ms,
                expires_at_ms=request.expires_at_ms,
                resolved_at_ms=now,
            )
        )

    def _record(self, closed: ClosedApproval) -> asyncio.Future[None] | None:
        """Queue the history row (never cancelled with the caller; see the module docstring)."""
        if self._store is None:
            return None
        try:
            written = self._store.submit_write(
                lambda conn: approvals_repo.record_closed(conn, closed, APPROVAL_HISTORY_KEEP)
            )
        except StoreClosedError:
            logger.warning("exec approval %s closed after the store did: not in history", closed.id)
            return None
        written.add_done_callback(_log_failed_record)
        return written

    async def history(self, after: HistoryCursor | None, limit: int) -> list[ClosedApproval]:
        """Return up to `limit` closed approvals, newest first, older than `after` if given."""
        if self._store is None:
            return []
        return await self._store.read(lambda conn: approvals_repo.list_closed(conn, after, limit))

    def pending(self) -> list[dict[str, Any]]:
        """Return the waiting requests, oldest first."""
        return [request.payload() for request in self.book.pending.values()]


async def _settled(written: asyncio.Future[None] | None) -> None:
    """Wait until a queued history row is written (or failed: `_log_failed_record` says so)."""
    if written is not None:
        with contextlib.suppress(Exception):
            await asyncio.shield(written)


def _log_failed_record(written: asyncio.Future[None]) -> None:
    if not written.cancelled() and (error := written.exception()) is not None:
        logger.warning("exec approval history row not written: %s", error)
