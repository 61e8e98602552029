"""mlbench: a pluggable benchmark harness for multi-label classification."""

from __future__ import annotations

#: The name mlbench is installed under (``pip install mlbench-harness``); the import package and the
#: command stay ``mlbench``. The name "mlbench" on PyPI belongs to an unrelated project.
DIST_NAME = "mlbench-harness"

__all__ = ["DIST_NAME", "__version__"]


def __getattr__(name: str) -> str:
    # the version is read from the installed metadata on first use, not at every import
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(DIST_NAME)
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0.0.0"
    raise AttributeError(f"module 'mlbench' has no attribute {name!r}")
