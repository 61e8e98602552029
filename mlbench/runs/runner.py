"""Train a method on a task, evaluate it on test, and log the run to MLflow.

One parent MLflow run per (method, task, seed). The runner owns everything a
method should not have to think about: seeding, torch's threads and
determinism (:mod:`mlbench.runs.provenance`), the device, the checkpoint
folder, timing, checking every prediction before any metric is computed from
it (a sparse 0/1 matrix of the split's shape, finite scores: anything else
fails the run in one line naming the method), metrics, provenance tags,
predictions as an artifact, and marking the run FAILED (with the error) when
something breaks, so no result is lost silently and no invalid one is kept.
"""

from __future__ import annotations

import logging
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mlbench.api import FitContext, Method, MlbenchError, Split, Task, as_binary_csr, prediction_problem, scores_problem
from mlbench.contract import seed_everything
from mlbench.metrics import evaluate

log = logging.getLogger(__name__)

#: Columns of the summary table, in the order the paper reports them.
SUMMARY_COLUMNS = (
    ("hamming_loss", "HL"),
    ("subset_01_loss", "0/1 loss"),
    ("micro_precision", "micro-P"),
    ("micro_recall", "micro-R"),
    ("micro_f1", "micro-F1"),
    ("macro_f1", "macro-F1"),
    ("hf_micro_f1", "HF-F1"),
    ("lf_micro_f1", "LF-F1"),
)


def resolve_device(requested: str, method_cls: type[Method]) -> str:
    """``auto`` means CUDA when the method can use it and a GPU is visible."""
    if requested not in ("auto", "cpu") and not requested.startswith("cuda"):
        raise MlbenchError(f"unknown device {requested!r}; use auto, cpu or cuda[:N]")
    if not getattr(method_cls, "accelerated", False):
        if requested.startswith("cuda"):
            log.warning("method %s runs on the CPU only; ignoring --device %s", method_cls.name, requested)
        return "cpu"
    if requested == "cpu":
        return "cpu"
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise MlbenchError(f"--device {requested} was asked for but no CUDA device is visible")
    return requested


@dataclass
class RunResult:
    method: str
    task: str
    seed: int
    params: dict[str, Any]
    test: dict[str, float]
    valid: dict[str, float]
    fit_seconds: float
    predict_seconds: float
    run_id: str | None = None
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    fit_report: dict[str, float | str] = field(default_factory=dict)
    execution: dict[str, str] = field(default_factory=dict)  # threads, CPU, kernel level (provenance tags)


def evaluate_split(method: Method, split: Split, label_freq: np.ndarray) -> tuple[dict[str, float], Any, Any]:
    """Metrics of ``method`` on ``split``, plus the prediction and scores (None if unsupported).

    The prediction and the scores are checked first (:func:`mlbench.api.prediction_problem`,
    :func:`~mlbench.api.scores_problem`): an invalid one raises, so no metric is ever computed from it.
    """
    raw = method.predict(split)
    problem = prediction_problem(raw, len(split), split.n_labels)
    if problem:
        raise MlbenchError(f"method {method.name!r}: {problem} on the {split.name} split; nothing was recorded as a result")
    pred = as_binary_csr(raw, len(split), split.n_labels)
    scores = None
    if method.supports_scores:
        raw_scores = method.predict_scores(split)
        problem = scores_problem(raw_scores, len(split), split.n_labels)
        if problem:
            raise MlbenchError(f"method {method.name!r}: {problem} on the {split.name} split; "
                               "nothing was recorded as a result")
        scores = np.asarray(raw_scores, dtype=np.float32)
    return evaluate(split.Y, pred, label_freq=label_freq, scores=scores), pred, scores


def fit_and_evaluate(
    method: Method,
    task: Task,
    seed: int,
    device: str,
    hooks: Sequence = (),
    progress: bool = True,
    checkpoint_dir: Path | None = None,
    splits: Sequence[str] = ("valid", "test"),
    train: Split | None = None,
) -> tuple[RunResult, dict[str, tuple[Any, Any]]]:
    """Fit on train (selecting on valid) and evaluate on the named splits.

    ``train`` replaces the task's training split (refitting on train+valid);
    metrics still use the task's training label frequencies, so the HF/LF label
    groups stay those of the task.
    """
    from mlbench.runs.provenance import execution_tags, pin_torch, torch_threads

    uses_torch = type(method).accelerated
    if uses_torch:
        pin_torch(torch_threads())
    seed_everything(seed)
    with tempfile.TemporaryDirectory(prefix="mlbench-ckpt-") as tmp:
        ctx = FitContext(
            device=device,
            seed=seed,
            checkpoint_dir=checkpoint_dir or Path(tmp),
            hooks=hooks,
            progress=progress,
        )
        t0 = time.perf_counter()
        method.fit(train if train is not None else task.train, task.valid, ctx)
        fit_seconds = time.perf_counter() - t0
    scores: dict[str, dict[str, float]] = {}
    outputs: dict[str, tuple[Any, Any]] = {}
    t0 = time.perf_counter()
    for name in splits:
        scores[name], pred, sc = evaluate_split(method, task.splits[name], task.label_freq)
        outputs[name] = (pred, sc)
    predict_seconds = time.perf_counter() - t0
    result = RunResult(
        method=method.name,
        task=task.name,
        seed=seed,
        params=dict(method.params),
        test=scores.get("test", {}),
        valid=scores.get("valid", {}),
        fit_seconds=fit_seconds,
        predict_seconds=predict_seconds,
        history=list(ctx.history),
        fit_report=dict(method.fit_report()),
        execution=execution_tags(device, uses_torch),
    )
    return result, outputs


def log_fit_report(tracker: Any, run_id: str, report: Mapping[str, float | str]) -> None:
    """``Method.fit_report``: numbers as metrics, anything else as ``mlbench.fit.<key>`` tags."""
    numbers = {k: float(v) for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if numbers:
        tracker.log_metrics(run_id, numbers)
    others = {f"fit.{k}": str(v) for k, v in report.items() if k not in numbers}
    if others:
        tracker.set_tags(run_id, others)


def _origin(method_cls: type[Method]) -> str:
    """Distribution and version (or plugin file) of a registered method; "unregistered" otherwise."""
    from mlbench.registry import method_origin

    try:
        return method_origin(method_cls.name)
    except MlbenchError:
        return "unregistered"


def run_tags(
    method_cls: type[Method], task: Task, seed: int, device: str, preset: str | None, role: str = "parent"
) -> dict[str, str]:
    """Provenance tags; ``role`` is parent (one per method, task, seed), trial or aggregate."""
    from mlbench.runs.identity import data_tags
    from mlbench.runs.provenance import device_description, git_commit, versions

    tags = {
        "role": role,
        "method": method_cls.name,
        "method_origin": _origin(method_cls),
        "task": task.name,
        "dataset": task.dataset,
        "fingerprint": task.fingerprint,
        "transforms": ",".join(task.transforms) or "none",
        "seed": str(seed),
        "preset": preset or "default",
        "device": device_description(device),
        "git_commit": git_commit(),
        **data_tags(task),
    }
    tags.update({f"version.{k}": v for k, v in versions().items()})
    return tags


def run_once(
    method_cls: type[Method],
    task: Task,
    params: Mapping[str, Any],
    seed: int,
    device: str,
    tracker: Any | None,
    preset: str | None = None,
    progress: bool = True,
    log_predictions: bool = True,
    save_model: bool = False,
    extra_tags: Mapping[str, str] | None = None,
    suite: str | None = None,
    model_references: Sequence[str] = (),
    label: str | None = None,
) -> RunResult:
    """One parent run: fit with ``params``, evaluate on valid and test, log everything.

    ``save_model`` also logs the fitted model (``Method.save``) as the run's
    ``model/`` artifact, for a later run to start from (see ``mlbench.runs.suite``).
    The run is tagged with its identity (:func:`mlbench.runs.identity.identity_tags`):
    ``suite`` names the bench suite it belongs to (for its label) and
    ``model_references`` the parameters that hold another run's model; ``label`` is the short row label the
    suite gave the configuration (else one is made from it), which also begins the MLflow run name.
    """
    from mlbench.runs.identity import identity_tags

    method = method_cls(preset=preset, **params)
    run_id = None
    hooks = []
    if tracker is not None:
        exp = tracker.experiment_id(task.name)
        identity = identity_tags(method_cls, method.params, preset, overrides=params, suite=suite,
                                 model_references=tuple(model_references), label=label)
        tags = {**run_tags(method_cls, task, seed, device, preset), **identity, **(extra_tags or {})}
        run_id = tracker.start_run(exp, f"{identity['label']}-seed{seed}", tags)
        tracker.log_params(run_id, {**method.params, "preset": preset or "default", "seed": seed})
        tracker.log_json(run_id, "labels.json", {"labels": list(task.labels), "train_frequency": task.label_freq.tolist()})

        def log_epoch(epoch: int, metrics: Mapping[str, float]) -> None:
            tracker.log_metrics(run_id, metrics, step=epoch)

        hooks.append(log_epoch)
    try:
        result, outputs = fit_and_evaluate(method, task, seed, device, hooks=hooks, progress=progress)
    except BaseException as exc:
        if tracker is not None and run_id is not None:
            tracker.set_tags(run_id, {"error": f"{type(exc).__name__}: {exc}"})
            tracker.log_json(run_id, "error.json", {"traceback": traceback.format_exc()})
            tracker.end_run(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    result.run_id = run_id
    if tracker is not None and run_id is not None:
        tracker.log_metrics(run_id, {f"test_{k}": v for k, v in result.test.items()})
        tracker.log_metrics(run_id, {f"final_valid_{k}": v for k, v in result.valid.items()})
        tracker.log_metrics(run_id, {"fit_seconds": result.fit_seconds, "predict_seconds": result.predict_seconds})
        tracker.set_tags(run_id, result.execution)
        log_fit_report(tracker, run_id, result.fit_report)
        if log_predictions:
            pred, sc = outputs["test"]
            tracker.log_predictions(run_id, "test", task.test.ids, pred, sc)
        if save_model:
            tracker.log_model(run_id, method)
        tracker.end_run(run_id)
    return result


def aggregate(results: Sequence[RunResult], split: str = "test") -> dict[str, tuple[float, float]]:
    """Mean and sample standard deviation of every metric over seeds."""
    keys = sorted(set().union(*(getattr(r, split).keys() for r in results)))
    out = {}
    for k in keys:
        vals = np.array([getattr(r, split)[k] for r in results if k in getattr(r, split)], dtype=float)
        out[k] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0)
    return out


def log_aggregate(
    tracker: Any,
    method_cls: type[Method],
    task: Task,
    results: Sequence[RunResult],
    preset: str | None,
    params: Mapping[str, Any],
    extra_tags: Mapping[str, str] | None = None,
) -> str | None:
    """Log mean and std over seeds as one run (tag ``mlbench.role=aggregate``); return its id.

    Metrics ``test_<metric>_mean`` and ``test_<metric>_std`` (sample std, as in the
    summary) and ``n_seeds``; the tag ``mlbench.seed_runs`` lists the per-seed parent
    runs it summarises. The run is keyed by those runs, so re-running a finished
    tuning command (which reuses its parent runs) updates the same aggregate
    instead of adding another.
    """
    import hashlib

    run_ids = [r.run_id for r in results if r.run_id]
    if tracker is None or len(results) < 2 or len(run_ids) != len(results):
        return None
    key = hashlib.sha256(",".join(sorted(run_ids)).encode()).hexdigest()[:16]
    exp = tracker.experiment_id(task.name)
    found = tracker.find_runs(exp, {"role": "aggregate", "aggregate_key": key})
    seeds = ",".join(str(r.seed) for r in results)
    if found:
        run_id = found[0].info.run_id
        tracker.reopen_run(run_id)
    else:
        tags = {k: v for k, v in run_tags(method_cls, task, results[0].seed, "cpu", preset, role="aggregate").items()
                if k not in ("seed", "device")}
        tags.update({"aggregate_key": key, "seeds": seeds, "seed_runs": ",".join(run_ids), **(extra_tags or {})})
        run_id = tracker.start_run(exp, f"{method_cls.name}-seeds{seeds.replace(',', '-')}", tags)
        tracker.log_params(run_id, {**params, "preset": preset or "default", "seeds": seeds})
    metrics: dict[str, float] = {"n_seeds": float(len(results))}
    for k, (mean, std) in aggregate(results, "test").items():
        metrics[f"test_{k}_mean"] = mean
        metrics[f"test_{k}_std"] = std
    tracker.log_metrics(run_id, metrics)
    tracker.end_run(run_id)
    return run_id


def format_summary(results: Sequence[RunResult], split: str = "test") -> str:
    """A plain-text table: one row per seed, plus mean ± std when there are several."""
    header = ["method", "task", "seed"] + [label for _, label in SUMMARY_COLUMNS] + ["fit s"]
    rows = []
    for r in results:
        m = getattr(r, split)
        rows.append(
            [r.method, r.task, str(r.seed)]
            + [f"{m[k]:.4f}" if k in m else "-" for k, _ in SUMMARY_COLUMNS]
            + [f"{r.fit_seconds:.1f}"]
        )
    if len(results) > 1:
        agg = aggregate(results, split)
        rows.append(
            [results[0].method, results[0].task, "mean±std"]
            + [f"{agg[k][0]:.4f}±{agg[k][1]:.4f}" if k in agg else "-" for k, _ in SUMMARY_COLUMNS]
            + [f"{np.mean([r.fit_seconds for r in results]):.1f}"]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)

