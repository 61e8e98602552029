"""Importing the scripts of benchmarks/ from a test (they are scripts, not a package)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module: the folder is on ``sys.path`` while it and the scripts it imports from
    the same folder (``tables``, ``metrics_speed``, ``step_timing``) load, and leaves it afterwards."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))
