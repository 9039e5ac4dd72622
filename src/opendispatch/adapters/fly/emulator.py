"""Moved to `opendispatch.testing.fly_emulator` (issue #21, item 6); import it from there.

This name stays only until the composition root (`bootstrap.py`, the `fly-emulator` backend)
imports the new module, then goes; tests/architecture/test_layers.py allows this one adapter
module to import `opendispatch.testing` meanwhile.
"""

from __future__ import annotations

from ...testing.fly_emulator import DEFAULT_APP, MachinesEmulator, serve_emulator

__all__ = ["DEFAULT_APP", "MachinesEmulator", "serve_emulator"]
