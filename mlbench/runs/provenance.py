"""What a run records about where it ran: the code's commit, the library versions and the device."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path


def git_commit() -> str:
    """The commit of the mlbench source tree, or "unknown" outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True,
            timeout=5,
        ).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    """Versions of the interpreter and of the libraries that shape the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    from mlbench import DIST_NAME

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("mlbench", "numpy", "scipy", "scikit-learn", "torch", "optuna", "mlflow"):
        try:
            out[dist] = version(DIST_NAME if dist == "mlbench" else dist)  # the tag keeps the import name
        except PackageNotFoundError:
            pass
    return out


def device_description(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.processor() or platform.machine()}, {sys.platform})"
