"""Agent runs: lifecycle, sessions and the backends that answer (echo, OpenAI, plugin)."""

from .backend import AgentBackend, BackendError, BackendRequest, Completion, TextDelta
from .manager import RunManager
from .run import AgentEvent, Run, RunFinished, RunStatus

__all__ = [
    "AgentBackend",
    "AgentEvent",
    "BackendError",
    "BackendRequest",
    "Completion",
    "Run",
    "RunFinished",
    "RunManager",
    "RunStatus",
    "TextDelta",
]
