"""Where the emulator finds `sprite-reporter`, the program every emulated machine runs.

A copy of the local adapter's lookup on purpose: adapters never import each other.
"""

from __future__ import annotations

import importlib.resources
import sys
from pathlib import Path

from ...domain.errors import ConfigError

SIDECAR_NAME = "sprite-reporter"


def sidecar_program() -> list[str]:
    """argv that runs the sidecar with this Python: from the wheel, else from a source checkout."""
    installed = importlib.resources.files("opendispatch") / "_sidecar" / SIDECAR_NAME
    if installed.is_file():
        return [sys.executable, str(installed)]
    checkout = Path(__file__).resolve().parents[4] / "sidecar" / SIDECAR_NAME
    if checkout.is_file():
        return [sys.executable, str(checkout)]
    raise ConfigError(
        f"The Fly emulator cannot find the {SIDECAR_NAME} sidecar (looked in the installed package's "
        f"_sidecar/ and in {checkout.parent}). Reinstall opendispatch, or run from a source checkout."
    )
