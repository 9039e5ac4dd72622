"""Logging set-up: one JSON object per line when not on a terminal, job id on every line,
and secrets redacted before anything is written.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TextIO

from .app.log_context import current_job_id
from .domain.redaction import Redactor


class JobContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            record.job_id = current_job_id.get()
        return True


class RedactingFilter(logging.Filter):
    """Redact the final message and any traceback: a secret may arrive through either."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self.redactor.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "job_id": getattr(record, "job_id", None),
            "msg": record.getMessage(),
        }
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        job = getattr(record, "job_id", None)
        line = f"{self.formatTime(record)} {record.levelname} {record.name}{f' [{job}]' if job else ''}: {record.getMessage()}"
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def configure_logging(
    *, verbose: bool, redactor: Redactor, stream: TextIO | None = None, json_lines: bool | None = None
) -> logging.Handler:
    stream = stream or sys.stderr
    if json_lines is None:
        json_lines = not stream.isatty()
    handler = logging.StreamHandler(stream)
    handler.addFilter(JobContextFilter())
    handler.addFilter(RedactingFilter(redactor))
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("opendispatch.webhook.server").setLevel(logging.INFO if verbose else logging.WARNING)
    return handler
