"""Identifier shapes. Ids are made by the application (randomness is I/O); the domain checks them."""

from __future__ import annotations

import re

JOB_ID_PATTERN = re.compile(r"j-[0-9a-f]{8}")


def looks_like_job_id(text: str) -> bool:
    return JOB_ID_PATTERN.fullmatch(text) is not None


def job_id_from_hex(hex8: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{8}", hex8):
        raise ValueError("a job id is made of 8 lowercase hex digits")
    return f"j-{hex8}"
