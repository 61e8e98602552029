"""A report's evidence, as files: the runs, their test predictions and the test labels they are scored on.

``mlbench report --out DIR`` writes, next to ``README.md`` and its figures::

    DIR/bundle.json            what the report shows: base task, tasks, filter, command line, resamples
    DIR/runs.csv               one row per run (columns: RUN_COLUMNS, then test_<metric> for every logged metric)
    DIR/predictions/<run>.npz  the run's test predictions
    DIR/tasks/<task>.npz       each task's test documents and labels, and its training label frequencies

and the report is rendered from these files alone (``mlbench report --from DIR``
renders the same bytes with no MLflow store and no dataset). ``mlbench report
--merge DIR`` adds a bundle's runs to the store's (:func:`merged_records`), so a
report can grow from evidence computed elsewhere or earlier without rerunning it.

Prediction files keep the artifact's CSR layout (``indptr``, ``indices``,
``shape``; the 0/1 values are implied) without ``ids``, which are stored once
per task (the export checks that every run predicted exactly those documents,
in that order). In place of the float32 score matrix (the largest part of an
artifact) a run that logged scores stores ``top_labels``: each document's
:data:`TOP_K` best-scored columns, best first, ties broken by the lower column
(:func:`mlbench.metrics.ranked_columns`, the ranking P@k and nDCG@k use), so
P@1/3/5 and nDCG@1/3/5 recompute exactly. Everything is ``np.savez_compressed``
with the smallest integer type that holds the values.

A bundle is untrusted input: :mod:`mlbench.reports.bundle_input` states the threat model and reads every
file of it (confined to the folder, bounded, every field checked); this module builds on what it returns
and checks each array's shape against its task's before any metric. A task's labels are stored under
:func:`~mlbench.reports.bundle_input.task_file_name` (the task name itself for every built-in task).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Iterator, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from mlbench.api import MlbenchError
from mlbench.reports.bundle_input import (MAX_FILE_BYTES, MAX_RUNS, BundleError, BundleFolder, csr_arrays, int_vector,
                                          read_meta, read_npz, read_rows, scalar_text, task_file_name)

#: Columns of runs.csv before the metrics, in order.
RUN_COLUMNS = (
    "run_id", "method", "task", "fingerprint", "seed", "config_digest", "code_digest", "config_label", "preset",
    "git_commit", "init_from_run", "device", "mlbench_version", "torch_version", "sklearn_version",
    "fit_seconds", "predict_seconds", "predictions",
    "label", "reused_fit_seconds", "threads_torch", "threads_linear", "cpu_model", "cpu_capability", "content_digest",
    "data_code_digest",
)
#: Tags the report's provenance reads, by runs.csv column.
TAG_COLUMNS = {
    "git_commit": "mlbench.git_commit", "init_from_run": "mlbench.init_from_run", "device": "mlbench.device",
    "mlbench_version": "mlbench.version.mlbench", "torch_version": "mlbench.version.torch",
    "sklearn_version": "mlbench.version.scikit-learn", "preset": "mlbench.preset",
    "threads_torch": "mlbench.threads.torch_intra", "threads_linear": "mlbench.threads.linear",
    "cpu_model": "mlbench.cpu.model", "cpu_capability": "mlbench.cpu.capability",
    "content_digest": "mlbench.content_digest", "data_code_digest": "mlbench.data_code_digest",
}
#: Ranked columns kept per document: the deepest k of the logged P@k / nDCG@k.
TOP_K = 5


#: The file benchmarks/rerun_envelope.py adds to a bundle, and the fields a report reads of it.
RERUNS = "reruns.csv"
RERUN_FIELDS = ("method", "task", "config_digest", "code_digest", "rerun_threads", "rerun_cpu_capability",
                "cells_differing", "delta_micro_f1", "delta_subset_01_loss")

#: The arrays of a tasks/ file and of a predictions/ file.
TRUTH_FIELDS = ("task", "fingerprint", "ids", "labels", "train_frequency", "indptr", "indices", "shape")
PREDICTION_FIELDS = ("indptr", "indices", "shape", "top_labels")


def _small_int(a: np.ndarray, upper: int) -> np.ndarray:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if upper <= np.iinfo(dtype).max:
            return np.asarray(a).astype(dtype)
    return np.asarray(a).astype(np.int64)


def _save_csr(m: sp.csr_matrix) -> dict[str, np.ndarray]:
    m = sp.csr_matrix(m)
    return {
        "indptr": _small_int(m.indptr, int(m.nnz)),
        "indices": _small_int(m.indices, int(m.shape[1])),
        "shape": np.asarray(m.shape, dtype=np.int64),
    }


@dataclass
class TaskTruth:
    """What scoring a run on a task needs: its test documents and labels, and its training label frequencies."""

    task: str
    fingerprint: str
    ids: np.ndarray
    labels: tuple[str, ...]
    Y: sp.csr_matrix
    train_frequency: np.ndarray

    @classmethod
    def from_task(cls, task: Any) -> "TaskTruth":
        return cls(task.name, task.fingerprint, np.asarray(task.test.ids), tuple(task.labels),
                   sp.csr_matrix(task.test.Y), np.asarray(task.label_freq))

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path, task=np.asarray(self.task), fingerprint=np.asarray(self.fingerprint), ids=self.ids,
            labels=np.asarray(self.labels), train_frequency=_small_int(self.train_frequency, int(self.train_frequency.max(initial=0))),
            **_save_csr(self.Y),
        )

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], task: str, where: str) -> "TaskTruth":
        """The task's labels as read from a bundle, every array checked against the others."""
        missing = [k for k in TRUTH_FIELDS if k not in arrays]
        if missing:
            raise BundleError(f"{where}: no field {', '.join(missing)}")
        name = scalar_text(arrays, "task", where)
        if name != task:
            raise BundleError(f"{where}: holds the labels of task {name[:80]!r}, not of {task[:80]!r}")
        ids, labels = arrays["ids"], arrays["labels"]
        if ids.ndim != 1 or ids.dtype.kind not in "Uiu" or labels.ndim != 1 or labels.dtype.kind != "U":
            raise BundleError(f"{where}: fields ids and labels must be vectors of names")
        Y = csr_arrays(arrays, where, shape=(len(ids), len(labels)))
        frequency = int_vector(arrays, "train_frequency", where, length=len(labels))
        return cls(task, scalar_text(arrays, "fingerprint", where), ids, tuple(str(x) for x in labels), Y, frequency)


def _format(v: float) -> str:
    return repr(float(v))


class Bundle:
    """A bundle folder: bundle.json and runs.csv read and checked at once, labels and predictions on demand."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.folder = BundleFolder(self.root)
        if not all(os.path.lexists(self.root / name) for name in ("runs.csv", "bundle.json")):
            raise BundleError(f"{self.root} holds no report bundle (runs.csv and bundle.json); write one with "
                              "`mlbench report --task T --out DIR`")
        self.meta: dict[str, Any] = read_meta(self.folder)
        self._runs = read_rows(self.folder)
        self._by_id = {run["row"]["run_id"]: run for run in self._runs}

    def rows(self) -> list[dict[str, str]]:
        return [dict(run["row"]) for run in self._runs]

    def records(self) -> list[Any]:
        """The runs as :class:`mlbench.reports.records.RunRecord`, rows labelled."""
        from mlbench.reports.records import RunRecord, label_rows

        out = []
        for run in self._runs:
            row = run["row"]
            metrics = dict(run["metrics"])
            metrics["compute_seconds"] = run["fit"] + run["predict"]
            tags = {tag: row[col] for col, tag in TAG_COLUMNS.items() if row.get(col)}
            out.append(RunRecord(
                run_id=row["run_id"], method=row["method"], task=row["task"], seed=run["seed"],
                fingerprint=row["fingerprint"], metrics=metrics, tags=tags, artifact_uri="", start_time=0,
                config_digest=row["config_digest"], code_digest=row["code_digest"], config_label=row["config_label"],
                fit_seconds=run["fit"], predict_seconds=run["predict"], label=row.get("label", ""),
                reused_fit_seconds=run["reused_fit"],
            ))
        return label_rows(out)

    @lru_cache(maxsize=None)
    def truth(self, task: str) -> TaskTruth:
        name = task_file_name(task)
        with self.folder.open("tasks", name, field=f"test labels of task {task[:80]!r}") as f:
            where = self.folder.where("tasks", name)
            return TaskTruth.from_arrays(read_npz(f, where, TRUTH_FIELDS), task, where)

    def _run(self, run_id: str) -> dict[str, Any]:
        if run_id not in self._by_id:
            raise BundleError(f"bundle {self.root} has no run {run_id[:40]!r}")
        return self._by_id[run_id]

    @contextlib.contextmanager
    def _prediction_file(self, run_id: str) -> Iterator[tuple[IO[bytes], TaskTruth, str]]:
        run = self._run(run_id)
        truth = self.truth(run["row"]["task"])
        with self.folder.open("predictions", f"{run_id}.npz", field=f"predictions of run {run_id}") as f:
            yield f, truth, self.folder.where("predictions", f"{run_id}.npz")

    def reruns(self) -> list[dict[str, Any]]:
        """The lines of ``reruns.csv`` (benchmarks/rerun_envelope.py: a committed run rerun under other execution
        settings), each checked: its identity texts, and its deltas as numbers; [] without the file."""
        if not os.path.lexists(self.root / RERUNS):
            return []
        where = self.folder.where(RERUNS)
        rows = list(csv.DictReader(io.StringIO(self.folder.read_text(RERUNS, limit=MAX_FILE_BYTES), newline="")))
        out = []
        for n, row in enumerate(rows[:MAX_RUNS], 2):
            if any(row.get(k) is None or len(row[k]) > 300 for k in RERUN_FIELDS):
                raise BundleError(f"{where} line {n}: fields {', '.join(RERUN_FIELDS)} expected")
            try:
                deltas = {k: float(row[k]) for k in ("delta_micro_f1", "delta_subset_01_loss")}
            except ValueError:
                raise BundleError(f"{where} line {n}: a delta is not a number") from None
            if not all(abs(v) <= 1 for v in deltas.values()):
                raise BundleError(f"{where} line {n}: a delta is outside [-1, 1]")
            out.append({**{k: row[k] for k in RERUN_FIELDS}, **deltas})
        return out

    def check_predictions(self) -> None:
        """Read and check every run's predictions and its task's labels now, before a report writes anything."""
        for run_id in self._by_id:
            self.predictions(run_id)

    @lru_cache(maxsize=None)
    def predictions(self, run_id: str) -> tuple[sp.csr_matrix, np.ndarray | None] | None:
        """(0/1 test predictions, ranked top columns or None) of a run, or None when it logged none;
        their shape checked against the run's task."""
        if not self._run(run_id)["row"]["predictions"]:
            return None
        with self._prediction_file(run_id) as (f, truth, where):
            return checked_predictions(read_npz(f, where, PREDICTION_FIELDS), truth, where)

    def copy_predictions(self, run_id: str, dst: Path) -> bool:
        """Copy a run's predictions file to ``dst`` once checked (False: the run has none)."""
        if not self._run(run_id)["row"]["predictions"]:
            return False
        with self._prediction_file(run_id) as (f, truth, where):
            checked_predictions(read_npz(f, where, PREDICTION_FIELDS), truth, where)
            f.seek(0)
            with open(dst, "wb") as out:
                shutil.copyfileobj(f, out)
        return True


def checked_predictions(arrays: dict[str, np.ndarray], truth: TaskTruth,
                        where: str) -> tuple[sp.csr_matrix, np.ndarray | None]:
    """A predictions file's matrix and ranked columns, both the shape of ``truth``'s test labels."""
    n_docs, n_labels = truth.Y.shape
    pred = csr_arrays(arrays, where, shape=(n_docs, n_labels))
    top = None
    if "top_labels" in arrays:
        top = arrays["top_labels"]
        width = min(TOP_K, n_labels)
        if top.ndim != 2 or top.shape != (n_docs, width) or top.dtype.kind not in "iu":
            raise BundleError(f"{where}: field top_labels is {top.dtype} {top.shape}, not {n_docs} x {width} columns")
        top = top.astype(np.int64)
        if top.size and (top.min() < 0 or top.max() >= n_labels):
            raise BundleError(f"{where}: field top_labels names a column outside the task's {n_labels} labels")
    return pred, top


def export_bundle(
    tracker: Any, records: Sequence[Any], out_dir: Path, meta: dict[str, Any], data_dir: Path | None = None,
    copied_predictions: Mapping[str, Path | None] | None = None, metrics_only_tasks: bool = False,
) -> tuple[Bundle, list[Any]]:
    """Write ``records`` (their predictions read from the store) and their tasks' labels as a bundle.

    A run listed in ``copied_predictions`` comes from another bundle: its
    predictions file is copied from the path given (None: it had none) instead
    of being read from the store. Runs on a split other than the task's current
    one (another fingerprint) cannot be scored from the bundle and are left out;
    the second value lists them. With ``metrics_only_tasks``, the runs of a task this machine cannot build
    (a comparison across tasks read from other bundles' metrics) are kept without predictions or labels;
    ``tracker=None`` exports only the predictions of ``copied_predictions``.
    """
    copied_predictions = copied_predictions or {}
    from mlbench.metrics import ranked_columns
    from mlbench.data.tasks import get_task

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "predictions").mkdir(exist_ok=True)
    (out_dir / "tasks").mkdir(exist_ok=True)
    for old in (out_dir / "predictions").glob("*.npz"):  # a bundle holds this export's runs only
        old.unlink()
    for old in (out_dir / "tasks").glob("*.npz"):
        old.unlink()
    truths: dict[str, TaskTruth | None] = {}
    kept, dropped = [], []
    for r in sorted(records, key=lambda r: (r.task, r.method, r.config_digest, r.seed, r.run_id)):
        if r.task not in truths:
            try:
                truths[r.task] = TaskTruth.from_task(get_task(r.task, data_dir=data_dir))
            except MlbenchError:
                if not metrics_only_tasks:
                    raise
                truths[r.task] = None  # a task this machine cannot build: its runs keep their metrics only
        truth = truths[r.task]
        if truth is not None and r.fingerprint != truth.fingerprint:
            dropped.append(r)
            continue
        kept.append(r)
    metric_names = sorted({k for r in kept for k in r.metrics if k != "compute_seconds"})
    with open(out_dir / "runs.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([*RUN_COLUMNS, *(f"test_{k}" for k in metric_names)])
        for r in kept:
            if truths[r.task] is None or tracker is None and r.run_id not in copied_predictions:
                has_predictions = False
            elif r.run_id in copied_predictions:
                source = copied_predictions[r.run_id]
                if source is not None:  # checked against the task as it is now, not only as its bundle said
                    with open(source, "rb") as f:
                        where = f"predictions of run {r.run_id} (a merged bundle's)"
                        checked_predictions(read_npz(f, where, PREDICTION_FIELDS), truths[r.task], where)
                    shutil.copyfile(source, out_dir / "predictions" / f"{r.run_id}.npz")
                has_predictions = source is not None
            else:
                has_predictions = _export_predictions(tracker, r, truths[r.task], out_dir / "predictions",
                                                      ranked_columns)
            row = {
                "run_id": r.run_id, "method": r.method, "task": r.task, "fingerprint": r.fingerprint, "seed": str(r.seed),
                "config_digest": r.config_digest, "code_digest": r.code_digest, "config_label": r.config_label,
                "fit_seconds": _format(r.fit_seconds),
                "predict_seconds": _format(r.predict_seconds if r.predict_seconds is not None
                                           else r.metrics.get("compute_seconds", 0.0) - r.fit_seconds),
                "predictions": f"predictions/{r.run_id}.npz" if has_predictions else "",
                "label": r.short_label,
                "reused_fit_seconds": "" if r.reused_fit_seconds is None else _format(r.reused_fit_seconds),
            }
            row.update({col: r.tags.get(tag, "") for col, tag in TAG_COLUMNS.items()})
            writer.writerow([row[c] for c in RUN_COLUMNS] + [_format(r.metrics[k]) if k in r.metrics else ""
                                                               for k in metric_names])
    for name, truth in truths.items():
        if truth is not None and any(r.task == name for r in kept):
            truth.save(out_dir / "tasks" / task_file_name(name))
    (out_dir / "bundle.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return Bundle(out_dir), dropped


def _export_predictions(tracker: Any, r: Any, truth: TaskTruth, folder: Path, ranked_columns: Any) -> bool:
    try:
        ids, pred, scores = tracker.download_predictions(r.run_id)
    except MlbenchError:
        return False  # logged with --no-predictions: its metrics stay, nothing to recompute them from
    if list(ids) != list(truth.ids):
        raise BundleError(f"run {r.run_id} predicted other documents than task {truth.task}")
    arrays = _save_csr(pred)
    if scores is not None:
        arrays["top_labels"] = _small_int(ranked_columns(scores, TOP_K), pred.shape[1])
    np.savez_compressed(folder / f"{r.run_id}.npz", **arrays)
    return True


def merged_records(
    store_records: Sequence[Any], bundle_dirs: Sequence[Path], tasks: Sequence[str], scratch: Path | None
) -> tuple[list[Any], dict[str, Path | None]]:
    """The store's runs plus the runs of earlier bundles that the store has no newer run for.

    A bundle run is kept unless the store holds a run of the same cell (method,
    task, seed, fingerprint, configuration digest): the store's run is the newer
    evidence. Only the bundles' runs of ``tasks`` are read. Each kept run's
    predictions are copied into ``scratch`` first, so the folder being rewritten
    may itself be one of the bundles; with ``scratch=None`` (a comparison that reads
    metrics only) nothing is copied. Returns the records (rows not yet labelled)
    and, per bundle run, its copied predictions file (None without one or without a copy).
    """
    def cell(r: Any) -> tuple[Any, ...]:
        return (r.method, r.task, r.seed, r.fingerprint, r.config_digest)

    taken = {cell(r) for r in store_records}
    store_ids = {r.run_id for r in store_records}
    records, copied = list(store_records), {}
    for i, folder in enumerate(bundle_dirs):
        bundle = Bundle(Path(folder))
        for r in bundle.records():
            if r.task not in tasks or cell(r) in taken or r.run_id in copied or r.run_id in store_ids:
                continue
            taken.add(cell(r))
            source = None
            if scratch is not None:  # read through the bundle's checks: no path of its own is followed
                source = scratch / f"{i}-{r.run_id}.npz"
                if not bundle.copy_predictions(r.run_id, source):
                    source = None
            copied[r.run_id] = source
            records.append(r)
    return records, copied

