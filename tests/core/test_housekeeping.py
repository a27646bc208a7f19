"""Process tuning of the long-running commands, checked in a process of its own (it changes the interpreter)."""

from __future__ import annotations

import subprocess
import sys

from app.core.housekeeping import YOUNG_COLLECTION_THRESHOLD


def test_start_up_objects_are_frozen_and_young_collections_spaced_out() -> None:
    code = (
        "import gc; from app.core.housekeeping import freeze_startup_objects; "
        "before = gc.get_threshold(); freeze_startup_objects(); "
        "print(gc.get_freeze_count() > 0, gc.get_threshold()[0], gc.get_threshold()[1:] == before[1:])"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert shown == ["True", str(YOUNG_COLLECTION_THRESHOLD), "True"]
