"""Open-Dispatch: run AI coding agents in ephemeral sprites from chat.

The embedding API. `open_dispatcher` runs the whole service (webhook server, job tasks)
with the adapters you pass; it is imported lazily so that `import opendispatch` stays light
(no web framework loaded until you start one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import Config
from .domain.errors import DispatchError
from .domain.job import Conversation, Job, JobState, User
from .domain.job_spec import AgentKind, JobSpec
from .domain.messages import Inbound

if TYPE_CHECKING:
    from .app.dispatcher import Dispatcher
    from .bootstrap import Running, open_dispatcher

__all__ = [
    "AgentKind",
    "Config",
    "Conversation",
    "DispatchError",
    "Dispatcher",
    "Inbound",
    "Job",
    "JobSpec",
    "JobState",
    "Running",
    "User",
    "open_dispatcher",
]


def __getattr__(name: str) -> Any:
    if name in ("open_dispatcher", "Running"):
        from . import bootstrap

        return getattr(bootstrap, name)
    if name == "Dispatcher":
        from .app.dispatcher import Dispatcher

        return Dispatcher
    raise AttributeError(f"module 'opendispatch' has no attribute {name!r}")
