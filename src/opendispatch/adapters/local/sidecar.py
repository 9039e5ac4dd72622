"""Where the `sprite-reporter` sidecar lives: inside the wheel, or in a source checkout."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from ...domain.errors import SpawnFailed

SIDECAR_NAME = "sprite-reporter"


def sidecar_path() -> Path:
    """The sidecar script that local sprites run.

    Wheels ship it as package data (`opendispatch/_sidecar/`); an editable install or a
    checkout has it at the repository root (`sidecar/`), four levels above this file.
    """
    installed = importlib.resources.files("opendispatch") / "_sidecar" / SIDECAR_NAME
    if installed.is_file():
        return Path(str(installed))
    checkout = Path(__file__).resolve().parents[4] / "sidecar" / SIDECAR_NAME
    if checkout.is_file():
        return checkout
    raise SpawnFailed(
        f"Cannot find the {SIDECAR_NAME} sidecar (looked in the installed package's _sidecar/ "
        f"and in {checkout.parent}). Reinstall opendispatch, or run from a full source checkout."
    )
