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
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from mlbench.api import MlbenchError

#: Columns of runs.csv before the metrics, in order.
RUN_COLUMNS = (
    "run_id", "method", "task", "fingerprint", "seed", "config_digest", "code_digest", "config_label", "preset",
    "git_commit", "init_from_run", "device", "mlbench_version", "torch_version", "sklearn_version",
    "fit_seconds", "predict_seconds", "predictions",
)
#: Tags the report's provenance reads, by runs.csv column.
TAG_COLUMNS = {
    "git_commit": "mlbench.git_commit", "init_from_run": "mlbench.init_from_run", "device": "mlbench.device",
    "mlbench_version": "mlbench.version.mlbench", "torch_version": "mlbench.version.torch",
    "sklearn_version": "mlbench.version.scikit-learn", "preset": "mlbench.preset",
}
#: Ranked columns kept per document: the deepest k of the logged P@k / nDCG@k.
TOP_K = 5


class BundleError(MlbenchError):
    """A bundle folder that is missing or does not hold what a report needs."""


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


def _load_csr(z: Any) -> sp.csr_matrix:
    shape = tuple(int(x) for x in z["shape"])
    indices = z["indices"].astype(np.int32)
    return sp.csr_matrix((np.ones(len(indices), dtype=np.int8), indices, z["indptr"].astype(np.int64)), shape=shape)


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
    def load(cls, path: Path) -> "TaskTruth":
        with np.load(path, allow_pickle=False) as z:
            return cls(str(z["task"]), str(z["fingerprint"]), z["ids"], tuple(str(x) for x in z["labels"]), _load_csr(z),
                       z["train_frequency"].astype(np.int64))


def _format(v: float) -> str:
    return repr(float(v))


class Bundle:
    """A bundle folder, read lazily."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if not (self.root / "runs.csv").is_file() or not (self.root / "bundle.json").is_file():
            raise BundleError(f"{self.root} holds no report bundle (runs.csv and bundle.json); write one with "
                              "`mlbench report --task T --out DIR`")
        self.meta: dict[str, Any] = json.loads((self.root / "bundle.json").read_text())

    def rows(self) -> list[dict[str, str]]:
        with open(self.root / "runs.csv", newline="") as f:
            return list(csv.DictReader(f))

    def records(self) -> list[Any]:
        """The runs as :class:`mlbench.reports.records.RunRecord`, rows labelled."""
        from mlbench.reports.records import RunRecord, label_rows

        out = []
        for row in self.rows():
            metrics = {k[5:]: float(v) for k, v in row.items() if k.startswith("test_") and v != ""}
            fit, predict = float(row["fit_seconds"] or 0), float(row["predict_seconds"] or 0)
            metrics["compute_seconds"] = fit + predict
            tags = {tag: row[col] for col, tag in TAG_COLUMNS.items() if row.get(col)}
            out.append(RunRecord(
                run_id=row["run_id"], method=row["method"], task=row["task"], seed=int(row["seed"]),
                fingerprint=row["fingerprint"], metrics=metrics, tags=tags, artifact_uri="", start_time=0,
                config_digest=row["config_digest"], code_digest=row["code_digest"], config_label=row["config_label"],
                fit_seconds=fit, predict_seconds=predict,
            ))
        return label_rows(out)

    @lru_cache(maxsize=None)
    def truth(self, task: str) -> TaskTruth:
        path = self.root / "tasks" / f"{task}.npz"
        if not path.is_file():
            raise BundleError(f"bundle {self.root} has no test labels for task {task!r} ({path.name})")
        return TaskTruth.load(path)

    def predictions(self, run_id: str) -> tuple[sp.csr_matrix, np.ndarray | None] | None:
        """(0/1 test predictions, ranked top columns or None) of a run, or None when it logged none."""
        path = self.root / "predictions" / f"{run_id}.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            top = z["top_labels"].astype(np.int64) if "top_labels" in z.files else None
            return _load_csr(z), top


def export_bundle(
    tracker: Any, records: Sequence[Any], out_dir: Path, meta: dict[str, Any], data_dir: Path | None = None,
    copied_predictions: Mapping[str, Path | None] | None = None,
) -> tuple[Bundle, list[Any]]:
    """Write ``records`` (their predictions read from the store) and their tasks' labels as a bundle.

    A run listed in ``copied_predictions`` comes from another bundle: its
    predictions file is copied from the path given (None: it had none) instead
    of being read from the store. Runs on a split other than the task's current
    one (another fingerprint) cannot be scored from the bundle and are left out;
    the second value lists them.
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
    truths: dict[str, TaskTruth] = {}
    kept, dropped = [], []
    for r in sorted(records, key=lambda r: (r.task, r.method, r.config_digest, r.seed, r.run_id)):
        if r.task not in truths:
            truths[r.task] = TaskTruth.from_task(get_task(r.task, data_dir=data_dir))
        truth = truths[r.task]
        if r.fingerprint != truth.fingerprint:
            dropped.append(r)
            continue
        kept.append(r)
    metric_names = sorted({k for r in kept for k in r.metrics if k != "compute_seconds"})
    with open(out_dir / "runs.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([*RUN_COLUMNS, *(f"test_{k}" for k in metric_names)])
        for r in kept:
            if r.run_id in copied_predictions:
                source = copied_predictions[r.run_id]
                if source is not None:
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
            }
            row.update({col: r.tags.get(tag, "") for col, tag in TAG_COLUMNS.items()})
            writer.writerow([row[c] for c in RUN_COLUMNS] + [_format(r.metrics[k]) if k in r.metrics else ""
                                                               for k in metric_names])
    for name, truth in truths.items():
        if any(r.task == name for r in kept):
            truth.save(out_dir / "tasks" / f"{name}.npz")
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
        rows = {row["run_id"]: row for row in bundle.rows()}
        for r in bundle.records():
            if r.task not in tasks or cell(r) in taken or r.run_id in copied or r.run_id in store_ids:
                continue
            taken.add(cell(r))
            source = None
            if scratch is not None and rows[r.run_id].get("predictions"):
                source = scratch / f"{i}-{r.run_id}.npz"
                try:
                    shutil.copyfile(bundle.root / rows[r.run_id]["predictions"], source)
                except OSError as exc:
                    raise BundleError(f"bundle {bundle.root}: cannot read the predictions of run {r.run_id} "
                                      f"({exc.strerror}: {rows[r.run_id]['predictions']})") from exc
            copied[r.run_id] = source
            records.append(r)
    return records, copied

