"""MLflow conventions: one experiment per task, one parent run per (method, task, seed).

Everything goes through :class:`mlflow.tracking.MlflowClient` with explicit
run ids rather than the fluent API's global "active run", so nested trial runs
and several worker processes never confuse one another.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

import numpy as np
import scipy.sparse as sp

from mlbench.api import MlbenchError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_ARTIFACT_DIR = "mlartifacts"
MODEL_ARTIFACT = "model"  # artifact folder of a run's saved model
#: Every run's first artifact: its name, parent and tags as it was started (see :meth:`Tracker.start_run`).
RUN_MANIFEST = "run.json"
TAG_PREFIX = "mlbench."
#: Attempts of one store call that meets a busy SQLite file (several worker processes writing at once).
LOCK_RETRIES = 12


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


def retry_when_locked(fn: Callable[..., T]) -> Callable[..., T]:
    """Retry a store call that failed because another process held the SQLite write lock.

    MLflow already sets a busy timeout, but SQLite answers "database is locked"
    at once (no waiting) when two transactions both try to upgrade to writing;
    backing off and retrying is then the documented remedy.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        delay = 0.05
        for attempt in range(LOCK_RETRIES):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not _is_lock_error(exc) or attempt == LOCK_RETRIES - 1:
                    if isinstance(exc, _store_error_types()):
                        raise TrackingStoreError.of(getattr(args[0], "tracking_uri", "?"), exc) from exc
                    raise
                log.info("MLflow store busy (%s); retrying in %.2f s", exc, delay)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 3.0)
        raise AssertionError("unreachable")

    return wrapper


#: MLflow's own HTTP retry settings, unless set in the environment: a dead tracking server fails a call after
#: 3 retries 0 + 2 + 4 s apart, each request waiting at most 10 s (MLflow's defaults: 7 retries, 120 s).
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
#: Quiet MLflow: no "View run ... at" lines per run, no INFO lines (about creating tables, for one).
QUIET_DEFAULTS = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true", "MLFLOW_LOGGING_LEVEL": "WARNING"}


def configure_mlflow_environment() -> None:
    """Bounded retries and quiet output, before MLflow is imported; a variable already set wins."""
    for key, value in {**HTTP_RETRY_DEFAULTS, **QUIET_DEFAULTS}.items():
        os.environ.setdefault(key, value)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # logs a traceback for every database error it then raises; mlbench reports the error in one line
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


class TrackingStoreError(MlbenchError):
    """The MLflow store failed (server unreachable, file read-only or missing, disk full): not the method's fault."""

    @classmethod
    def of(cls, uri: str, exc: BaseException) -> "TrackingStoreError":
        from mlbench.redaction import redact

        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        return cls(f"tracking store {redact(uri)}: {type(exc).__name__}: {redact(detail)}; check that it is "
                   f"reachable and writable, then rerun the same command (finished work is kept)")


@contextlib.contextmanager
def _creation_lock(uri: str) -> Iterator[None]:
    """For a local SQLite store: one process at a time opens (and maybe creates) it, so that two processes
    never run MLflow's schema migrations on the same fresh file at once (a lock file kept in the temp folder)."""
    prefix = "sqlite:///"
    path = uri[len(prefix):].partition("?")[0] if uri.startswith(prefix) else ""
    if not path or ":memory:" in path:
        yield
        return
    from filelock import FileLock

    key = hashlib.sha256(path.encode()).hexdigest()[:16]
    with FileLock(str(Path(tempfile.gettempdir()) / f"mlbench-store-{key}.lock")):
        yield


#: What a process sees while another one creates the same fresh SQLite store.
_SCHEMA_RACE = ("duplicate column", "already exists", "database is locked", "unique constraint", "no such table",
                "alembic_version")


@functools.lru_cache(maxsize=1)
def _store_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions of a store call that mean the store failed (turned into ``TrackingStoreError``)."""
    from mlflow.exceptions import MlflowException

    types: list[type[BaseException]] = [MlflowException, OSError]
    for module, name in (("sqlalchemy.exc", "SQLAlchemyError"), ("requests", "RequestException")):
        try:
            types.append(getattr(__import__(module, fromlist=[name]), name))
        except ImportError:  # pragma: no cover - both come with MLflow
            pass
    return tuple(types)


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


#: MLflow keeps at most this many characters of a parameter value; longer ones are cut.
MAX_PARAM_CHARS = 6000


def flatten_params(params: Mapping[str, Any]) -> dict[str, str]:
    """MLflow params are strings; ``None`` and sequences get a stable text form."""
    out = {}
    for k, v in params.items():
        out[k] = json.dumps(v) if isinstance(v, (list, tuple, dict)) or v is None else str(v)
    return out


def absolute_sqlite_uri(uri: str) -> str:
    """``sqlite:///mlflow.db`` made absolute: MLflow caches one store per URI string for the whole
    process, so a relative path would keep pointing into the first working directory."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and ":memory:" not in uri:
        path, sep, query = uri[len(prefix):].partition("?")
        return prefix + str(Path(path).resolve()) + sep + query
    return uri


class Tracker:
    """A thin layer over one MLflow store."""

    def __init__(self, tracking_uri: str = DEFAULT_TRACKING_URI, artifact_dir: str | Path = DEFAULT_ARTIFACT_DIR):
        configure_mlflow_environment()
        self.tracking_uri = absolute_sqlite_uri(tracking_uri)
        self.artifact_dir = Path(artifact_dir).resolve()
        self.probe()

    def probe(self) -> None:
        """Open the store now (creating a fresh one), so a bad URI fails before any work, in one line.

        Two processes creating the same fresh SQLite store race in MLflow's schema migration (the loser
        sees "duplicate column" or "table already exists"); the loser waits and opens the store again.
        """
        with _creation_lock(self.tracking_uri):
            self._open_store()

    def _open_store(self) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        for attempt in range(6):
            try:
                mlflow.set_tracking_uri(self.tracking_uri)
                self.client = MlflowClient(tracking_uri=self.tracking_uri)
                self.client.search_experiments(max_results=1)
                return
            except Exception as exc:  # only store code runs here (MLflow, SQLAlchemy, alembic, requests)
                racing = any(text in str(exc).lower() for text in _SCHEMA_RACE)
                if not self.local or not racing or attempt == 5:
                    raise TrackingStoreError.of(self.tracking_uri, exc) from exc
                log.info("MLflow store not ready (%s); retrying", exc)
                time.sleep(0.5 + random.random() * 1.5)

    @property
    def local(self) -> bool:
        return not self.tracking_uri.startswith(("http://", "https://", "databricks"))

    @retry_when_locked
    def experiment_id(self, name: str) -> str:
        """The experiment named ``name``, created with a pinned artifact folder if new."""
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        # A local store pins artifacts under ./mlartifacts/<experiment>; a tracking
        # server keeps its own artifact root.
        # (A task read from an absolute path is named by it: lstrip keeps its folder inside artifact_dir.)
        location = (self.artifact_dir / name.lstrip("/")).as_uri() if self.local else None
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
        """A new run with ``tags`` (prefixed ``mlbench.``) and its :data:`RUN_MANIFEST` artifact.

        Every run gets at least that one artifact. MLflow's run-comparison page
        (3.17) fails ("Something went wrong" in its Artifacts section) when the
        first run compared has artifacts and a later one has none, as a tuning
        trial or a mean-over-seeds run had: the server's artifact listing omits
        the file list of an empty run and the page reads it anyway.
        """
        all_tags = {TAG_PREFIX + k if not k.startswith(("mlflow.", TAG_PREFIX)) else k: str(v) for k, v in tags.items()}
        if parent_run_id is not None:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run_id = self._create_run(experiment_id, run_name, all_tags)
        # created and described in two retried steps: a busy store retried in the second cannot make a second run
        try:
            self.log_json(run_id, RUN_MANIFEST, {"run_name": run_name, "parent_run_id": parent_run_id, "tags": all_tags})
        except BaseException as exc:
            # the caller never gets this run's id: end it here, so nothing adopts or waits on a half-made run
            with contextlib.suppress(Exception):
                self.client.set_tag(run_id, TAG_PREFIX + "error", f"could not write {RUN_MANIFEST}: {exc}"[:5000])
                self.end_run(run_id, "FAILED")
            raise
        return run_id

    @retry_when_locked
    def _create_run(self, experiment_id: str, run_name: str, tags: Mapping[str, str]) -> str:
        return self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id

    @retry_when_locked
    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten_params(params)
        batch = [Param(k, v[:MAX_PARAM_CHARS]) for k, v in flat.items()]
        for i in range(0, len(batch), 100):
            self.client.log_batch(run_id, params=batch[i : i + 100])

    @retry_when_locked
    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None and math.isfinite(v)]
        for i in range(0, len(batch), 500):
            self.client.log_batch(run_id, metrics=batch[i : i + 500])

    @retry_when_locked
    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k if k.startswith(("mlflow.", TAG_PREFIX)) else TAG_PREFIX + k, str(v)[:5000]) for k, v in tags.items()]
        self.client.log_batch(run_id, tags=batch)

    @retry_when_locked
    def log_json(self, run_id: str, name: str, payload: Any) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(json.dumps(payload, indent=1, sort_keys=True, default=str))
            self.client.log_artifact(run_id, str(path))

    @retry_when_locked
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

    @retry_when_locked
    def log_model(self, run_id: str, method: Any) -> None:
        """The fitted method's own save format as the run's ``model/`` artifact, tagged ``saved_model``."""
        from mlbench.api import MlbenchError

        if not method.supports_save:
            raise MlbenchError(f"{method.name}: this method cannot save a fitted model")
        with tempfile.TemporaryDirectory() as tmp:
            method.save(Path(tmp) / MODEL_ARTIFACT)
            self.client.log_artifacts(run_id, str(Path(tmp) / MODEL_ARTIFACT), MODEL_ARTIFACT)
        self.set_tags(run_id, {"saved_model": MODEL_ARTIFACT})

    def download_model(self, run_id: str, dst: str | Path) -> Path:
        """Copy a run's ``model/`` artifact into ``dst``; the folder ``Method.load`` reads."""
        return Path(self.client.download_artifacts(run_id, MODEL_ARTIFACT, str(dst)))

    @retry_when_locked
    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    @retry_when_locked
    def get_run(self, run_id: str) -> Any | None:
        """The run, or None when this store has no (live) run with that id."""
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            if _is_lock_error(exc):
                raise
            return None
        return run if run.info.lifecycle_stage == "active" else None

    @retry_when_locked
    def find_runs(self, experiment_id: str, tags: Mapping[str, str]) -> list[Any]:
        """Active runs of the experiment carrying all ``tags`` (keys as logged), oldest first."""
        clauses = []
        for k, v in tags.items():
            key = k if k.startswith(("mlflow.", TAG_PREFIX)) else TAG_PREFIX + k
            if "'" in str(v):
                raise ValueError(f"tag values searched for cannot contain quotes: {v!r}")
            clauses.append(f"tags.`{key}` = '{v}'")
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                [experiment_id], filter_string=" and ".join(clauses), max_results=1000,
                order_by=["attributes.start_time ASC"], page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    @retry_when_locked
    def clear_tag(self, run_id: str, key: str) -> None:
        """Remove a tag (e.g. a stale ``error``) if the run has it."""
        key = key if key.startswith(("mlflow.", TAG_PREFIX)) else TAG_PREFIX + key
        if key in self.client.get_run(run_id).data.tags:
            self.client.delete_tag(run_id, key)

    @retry_when_locked
    def reopen_run(self, run_id: str) -> None:
        """Mark a run RUNNING again (a resumed study writes to its parent run once more)."""
        self.client.update_run(run_id, status="RUNNING")


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
