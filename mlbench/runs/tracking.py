"""The one door to the MLflow store: one experiment per task, one parent run per (method, task, seed).

Every MLflow call of mlbench goes through :class:`Tracker` (runs, tags, metrics, predictions, saved models,
searches), with explicit run ids rather than the fluent API's global "active run", so nested trial runs and
several worker processes never confuse one another. Opening the store, retries and store errors are
:mod:`mlbench.runs.store`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp

from mlbench.api import MlbenchError
from mlbench.runs.redaction import remember
from mlbench.runs.store import (SCHEMA_RACE, TrackingStoreError, absolute_sqlite_uri, check_sqlite_file,
                                configure_mlflow_environment, create_sqlite_atomically, creation_lock, forget_engine,
                                holds_no_runs, is_lock_error, is_schema_error, make_mlflow_schema, probe_server_database,
                                retry_when_locked, sqlite_path)

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_ARTIFACT_DIR = "mlartifacts"
MODEL_ARTIFACT = "model"  # artifact folder of a run's saved model
#: Every run's first artifact: its name, parent and tags as it was started (see :meth:`Tracker.start_run`).
RUN_MANIFEST = "run.json"
TAG_PREFIX = "mlbench."
#: MLflow keeps at most this many characters of a parameter value; longer ones are cut.
MAX_PARAM_CHARS = 6000
#: Attempts at opening a local store that another (non-mlbench) process may be creating at that moment.
OPEN_ATTEMPTS = 6


def flatten_params(params: Mapping[str, Any]) -> dict[str, str]:
    """MLflow params are strings; ``None`` and sequences get a stable text form."""
    out = {}
    for k, v in params.items():
        out[k] = json.dumps(v) if isinstance(v, (list, tuple, dict)) or v is None else str(v)
    return out


def tag_clauses(tags: Mapping[str, str]) -> list[str]:
    """MLflow search clauses for runs carrying all ``tags`` (``mlbench.`` added to a bare key)."""
    clauses = []
    for k, v in tags.items():
        key = k if k.startswith(("mlflow.", TAG_PREFIX)) else TAG_PREFIX + k
        if "'" in str(v):
            raise ValueError(f"tag values searched for cannot contain quotes: {v!r}")
        clauses.append(f"tags.`{key}` = '{v}'")
    return clauses


class Tracker:
    """A thin layer over one MLflow store."""

    def __init__(self, tracking_uri: str = DEFAULT_TRACKING_URI, artifact_dir: str | Path = DEFAULT_ARTIFACT_DIR):
        configure_mlflow_environment()
        remember(tracking_uri)
        self.tracking_uri = absolute_sqlite_uri(tracking_uri)
        remember(self.tracking_uri)
        self.artifact_dir = Path(artifact_dir).resolve()
        self.probe()

    def probe(self) -> None:
        """Open the store now (creating a fresh one), so a bad URI fails before any work, in one line.

        A URI that cannot be a database fails at once (a folder, a file that is not SQLite, a server that
        refuses the connection). A fresh local store is built whole in a temporary file and moved into place
        (:func:`~mlbench.runs.store.create_sqlite_atomically`), under a lock, so neither a second process
        nor a Ctrl-C half-way sees a half-made schema; a store left half-made by an older mlbench, holding
        no run, is rebuilt.
        """
        check_sqlite_file(self.tracking_uri, "--tracking-uri")
        probe_server_database(self.tracking_uri, "--tracking-uri")
        with creation_lock(self.tracking_uri):
            self._create(replace=False)
            try:
                self._open_store()
            except TrackingStoreError as exc:
                path = sqlite_path(self.tracking_uri)
                if path is None or not is_schema_error(exc.__cause__) or not holds_no_runs(path):
                    raise
                log.warning("tracking store %s was left half-made (no run in it): building it again", path)
                forget_engine(self.tracking_uri)
                self._create(replace=True)
                self._open_store()

    def _create(self, replace: bool) -> None:
        try:
            create_sqlite_atomically(self.tracking_uri, make_mlflow_schema, replace=replace)
        except Exception as exc:  # the file system or MLflow's migrations: the store's fault, in one line
            raise TrackingStoreError.of(self.tracking_uri, exc) from exc

    def _open_store(self) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        for attempt in range(OPEN_ATTEMPTS):
            try:
                mlflow.set_tracking_uri(self.tracking_uri)
                self.client = MlflowClient(tracking_uri=self.tracking_uri)
                self.client.search_experiments(max_results=1)
                return
            except Exception as exc:  # only store code runs here (MLflow, SQLAlchemy, alembic, requests)
                racing = any(text in str(exc).lower() for text in SCHEMA_RACE)
                if not self.local or not racing or attempt == OPEN_ATTEMPTS - 1:
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
            if is_lock_error(exc):
                raise
            return None
        return run if run.info.lifecycle_stage == "active" else None

    @retry_when_locked
    def find_runs(self, experiment_id: str, tags: Mapping[str, str]) -> list[Any]:
        """Active runs of the experiment carrying all ``tags`` (keys as logged), oldest first."""
        return self._search(experiment_id, tag_clauses(tags), "attributes.start_time ASC")

    def _search(self, experiment_id: str, clauses: list[str], order: str) -> list[Any]:
        """Every run of the experiment matching all ``clauses``, page by page, in ``order``."""
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs([experiment_id], filter_string=" and ".join(clauses), max_results=1000,
                                           order_by=[order], page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    @retry_when_locked
    def experiment_names(self) -> list[str]:
        """The names of every experiment of the store (one per task)."""
        return [e.name for e in self.client.search_experiments()]

    @retry_when_locked
    def finished_parent_runs(self, task: str, tags: Mapping[str, str] | None = None) -> list[Any]:
        """FINISHED parent runs of experiment ``task`` (no trial, no mean over seeds), newest first.

        ``tags`` (keys as logged, ``mlbench.`` added where missing) narrow the search on the store's side.
        """
        exp = self.client.get_experiment_by_name(task)
        if exp is None:
            return []
        runs = self._search(exp.experiment_id, ["attributes.status = 'FINISHED'", *tag_clauses(tags or {})],
                            "attributes.start_time DESC")
        return [r for r in runs if "mlflow.parentRunId" not in r.data.tags
                and r.data.tags.get(TAG_PREFIX + "role", "parent") == "parent"]

    def download_predictions(self, run_id: str, split: str = "test") -> tuple[np.ndarray, sp.csr_matrix, np.ndarray | None]:
        """(document ids, 0/1 matrix, scores or None) of a run's ``predictions_<split>.npz`` artifact."""
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = self.client.download_artifacts(run_id, f"predictions_{split}.npz", tmp)
            except Exception as exc:  # MLflow raises several types for a missing artifact
                raise MlbenchError(f"run {run_id} has no {split} predictions artifact ({type(exc).__name__})") from exc
            return load_predictions(local)

    @retry_when_locked
    def log_artifact_file(self, run_id: str, path: str | Path, folder: str | None = None) -> None:
        """One local file as an artifact of the run, under ``folder`` if given."""
        self.client.log_artifact(run_id, str(path), artifact_path=folder)

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
