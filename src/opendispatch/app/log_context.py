"""The job a log line is about, carried by context so every layer's log lines name it.

Trio tasks inherit context from the task that started them, so setting it once at the top
of a job task (or a webhook request) tags everything logged beneath.
"""

from __future__ import annotations

import contextvars

current_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_job_id", default=None)
