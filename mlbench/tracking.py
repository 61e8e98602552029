"""MLflow conventions: one experiment per task, one parent run per (method, task, seed).

Everything goes through :class:`mlflow.tracking.MlflowClient` with explicit
run ids rather than the fluent API's global "active run", so nested trial runs
and several worker processes never confuse one another.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_ARTIFACT_DIR = "mlartifacts"
TAG_PREFIX = "mlbench."


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

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("mlbench", "numpy", "scipy", "scikit-learn", "torch", "optuna", "mlflow"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def flatten_params(params: Mapping[str, Any]) -> dict[str, str]:
    """MLflow params are strings; ``None`` and sequences get a stable text form."""
    out = {}
    for k, v in params.items():
        out[k] = json.dumps(v) if isinstance(v, (list, tuple, dict)) or v is None else str(v)
    return out


class Tracker:
    """A thin layer over one MLflow store."""

    def __init__(self, tracking_uri: str = DEFAULT_TRACKING_URI, artifact_dir: str | Path = DEFAULT_ARTIFACT_DIR):
        import mlflow
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.artifact_dir = Path(artifact_dir).resolve()
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri)

    @property
    def local(self) -> bool:
        return not self.tracking_uri.startswith(("http://", "https://", "databricks"))

    def experiment_id(self, name: str) -> str:
        """The experiment named ``name``, created with a pinned artifact folder if new."""
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        # A local store pins artifacts under ./mlartifacts/<experiment>; a tracking
        # server keeps its own artifact root.
        location = (self.artifact_dir / name).as_uri() if self.local else None
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:
            # another worker created it between our lookup and our create
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    def start_run(
        self,
        experiment_id: str,
        run_name: str,
        tags: Mapping[str, str],
        parent_run_id: str | None = None,
    ) -> str:
        all_tags = {TAG_PREFIX + k if not k.startswith(("mlflow.", TAG_PREFIX)) else k: str(v) for k, v in tags.items()}
        if parent_run_id is not None:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(experiment_id, run_name=run_name, tags=all_tags)
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten_params(params)
        batch = [Param(k, v[:6000]) for k, v in flat.items()]
        for i in range(0, len(batch), 100):
            self.client.log_batch(run_id, params=batch[i : i + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None and math.isfinite(v)]
        for i in range(0, len(batch), 500):
            self.client.log_batch(run_id, metrics=batch[i : i + 500])

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k if k.startswith(("mlflow.", TAG_PREFIX)) else TAG_PREFIX + k, str(v)[:5000]) for k, v in tags.items()]
        self.client.log_batch(run_id, tags=batch)

    def log_json(self, run_id: str, name: str, payload: Any) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(json.dumps(payload, indent=1, sort_keys=True, default=str))
            self.client.log_artifact(run_id, str(path))

    def log_predictions(
        self, run_id: str, split_name: str, ids: tuple[str, ...], pred: sp.csr_matrix, scores: np.ndarray | None
    ) -> None:
        """Predictions as ``predictions_<split>.npz``: CSR parts, document ids, optional scores."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"predictions_{split_name}.npz"
            arrays: dict[str, np.ndarray] = {
                "ids": np.asarray(ids),
                "indptr": pred.indptr,
                "indices": pred.indices,
                "shape": np.asarray(pred.shape),
            }
            if scores is not None:
                arrays["scores"] = scores.astype(np.float32)
            np.savez_compressed(path, **arrays)
            self.client.log_artifact(run_id, str(path))

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)


def load_predictions(path: str | Path) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray | None]:
    """Read back what :meth:`Tracker.log_predictions` wrote: (ids, 0/1 matrix, scores)."""
    with np.load(path, allow_pickle=False) as z:
        shape = tuple(int(x) for x in z["shape"])
        data = np.ones(len(z["indices"]), dtype=np.int8)
        pred = sp.csr_matrix((data, z["indices"], z["indptr"]), shape=shape)
        scores = z["scores"] if "scores" in z.files else None
        return z["ids"], pred, scores


def device_description(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.processor() or platform.machine()}, {sys.platform})"
