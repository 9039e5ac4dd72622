"""The server's collector settings (gc_tuning.py), checked in a fresh interpreter.

A subprocess, so that freezing and new thresholds never leak into the test process.
"""

from __future__ import annotations

import json
import subprocess
import sys

from opendispatch.gc_tuning import MIDDLE_COLLECTION_EVERY, OLD_COLLECTION_EVERY, YOUNG_COLLECTION_EVERY

PROBE = """
import gc, json
before = gc.get_freeze_count()
from opendispatch.gc_tuning import tune_garbage_collector
tune_garbage_collector()
print(json.dumps({"before": before, "frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()}))
"""


def test_tuning_freezes_start_up_objects_and_collects_less_often() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60)
    seen = json.loads(result.stdout)
    assert seen["before"] == 0
    assert seen["frozen"] > 1000  # the interpreter's and our modules' objects
    assert seen["threshold"] == [YOUNG_COLLECTION_EVERY, MIDDLE_COLLECTION_EVERY, OLD_COLLECTION_EVERY]
    assert YOUNG_COLLECTION_EVERY > gc_default_young()


def gc_default_young() -> int:
    probe = "import gc; print(gc.get_threshold()[0])"
    return int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
