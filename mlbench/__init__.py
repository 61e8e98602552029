"""mlbench: a pluggable benchmark harness for multi-label classification."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
