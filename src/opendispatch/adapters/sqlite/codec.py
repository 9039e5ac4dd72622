"""How values and lines are stored as text: cattrs' JSON of a `Job`, `Session`, ... and a
batch's lines as a compact JSON array (the PostgreSQL store writes the same text)."""

from __future__ import annotations

import json

import cattrs.preconf.json

from ...domain.job import Job
from ...domain.session import Session

#: A batch's lines as stored: compact JSON, made once (`json.dumps` with options builds an
#: encoder per call).
LINES = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

converter = cattrs.preconf.json.make_converter()


def job_to_json(job: Job) -> str:
    return converter.dumps(job)


def job_from_json(text: str) -> Job:
    return converter.loads(text, Job)


def session_to_json(session: Session) -> str:
    return converter.dumps(session)


def session_from_json(text: str) -> Session:
    return converter.loads(text, Session)
