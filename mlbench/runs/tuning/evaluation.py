"""The end of a study: reload it, give its trial runs their final states, and evaluate the best trial's
configuration on test (optionally refitted on train+valid, for as many epochs as the best trial took), logging
the best parameters, the test metrics and the predictions to the study's MLflow parent run. A parent run that
already holds the test evaluation of the same best trial is read back instead of evaluated again.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from mlbench.api import MlbenchError, Split
from mlbench.runs.identity import identity_tags
from mlbench.runs.runner import RunResult, fit_and_evaluate, log_fit_report
from mlbench.runs.tuning.config import ATTR_BEST_EPOCHS, ATTR_PARAMS
from mlbench.runs.tuning.study import reload_study

if TYPE_CHECKING:
    from mlbench.runs.tuning.tuner import Tuner


def finalize(tuner: "Tuner") -> RunResult:
    """Evaluate the best configuration on test and log it to the parent run (once per best trial)."""
    from optuna.trial import TrialState

    tuner.study = reload_study(tuner.study)
    tuner.reconcile_mlflow()
    c = tuner.counts()
    complete = tuner.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    tracker, spec = tuner.tracker, tuner.spec
    if not complete:
        message = f"no trial of study {tuner.study_name!r} completed ({c.describe()}); nothing to evaluate on test"
        if tracker is not None and tuner.parent_run_id is not None:
            tracker.set_tags(tuner.parent_run_id, {"error": message})
            tracker.end_run(tuner.parent_run_id, "FAILED")
        raise MlbenchError(message)
    best = tuner.study.best_trial
    key = f"trial {best.number}" + (", refit on train+valid" if spec.refit else "")
    summary_tags = {
        "best_trial": best.number,
        "trials_complete": c.complete,
        "trials_pruned": c.pruned,
        "trials_failed": c.failed,
        "trials_interrupted": c.interrupted,
    }
    if tracker is not None and tuner.parent_run_id is not None:
        run = tracker.get_run(tuner.parent_run_id)
        if run is not None and run.data.tags.get("mlbench.final") == key and "test_micro_f1" in run.data.metrics:
            tracker.set_tags(tuner.parent_run_id, summary_tags)
            tracker.clear_tag(tuner.parent_run_id, "error")  # left by an interrupted run; the study is done
            tracker.end_run(tuner.parent_run_id)
            return result_from_run(tuner, run, best)

    params = dict(best.user_attrs.get(ATTR_PARAMS) or {**best.params, **spec.fixed})
    train: Split | None = None
    if spec.refit:
        train = merge_splits(tuner.task.train, tuner.task.valid)
        epochs = best.user_attrs.get(ATTR_BEST_EPOCHS)
        if "epochs" in params and epochs:
            params["epochs"] = int(epochs)  # no held-out data left to stop on: train as long as the best trial did
    method = tuner.method_cls(preset=spec.preset, **params)
    hooks = []
    if tracker is not None and tuner.parent_run_id is not None:
        run_id = tuner.parent_run_id
        hooks.append(lambda epoch, metrics: tracker.log_metrics(run_id, metrics, step=epoch))
    print(f"evaluating the best configuration (trial {best.number}, valid micro-F1 {best.value:.4f}) on test"
          + (" after refitting on train+valid" if spec.refit else ""), file=sys.stderr, flush=True)
    splits = ("test",) if spec.refit else ("valid", "test")
    try:
        result, outputs = fit_and_evaluate(method, tuner.task, spec.seed, tuner.device, hooks=hooks,
                                           progress=spec.progress, splits=splits, train=train)
    except BaseException as exc:
        if tracker is not None and tuner.parent_run_id is not None:
            tracker.set_tags(tuner.parent_run_id, {"error": f"final evaluation: {type(exc).__name__}: {exc}"})
            tracker.end_run(tuner.parent_run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    result.params = dict(method.params)
    result.run_id = tuner.parent_run_id
    if tracker is not None and tuner.parent_run_id is not None:
        rid = tuner.parent_run_id
        tracker.set_tags(rid, {**{f"best.{k}": v for k, v in method.params.items()}, **summary_tags})
        tracker.set_tags(rid, identity_tags(tuner.method_cls, method.params, spec.preset, overrides=spec.fixed,
                                            study=tuner.study_name))
        tracker.log_json(rid, "best_params.json", {"trial": best.number, "params": method.params,
                                                    "valid_micro_f1": best.value, "refit": spec.refit})
        log_study_plots(tracker, rid, tuner.study)
        metrics = {"best_valid_micro_f1": float(best.value), "fit_seconds": result.fit_seconds,
                   "predict_seconds": result.predict_seconds}
        metrics.update({f"test_{k}": v for k, v in result.test.items()})
        metrics.update({f"final_valid_{k}": v for k, v in result.valid.items()})
        tracker.log_metrics(rid, metrics)
        tracker.set_tags(rid, result.execution)
        log_fit_report(tracker, rid, result.fit_report)
        if spec.log_predictions:
            pred, sc = outputs["test"]
            tracker.log_predictions(rid, "test", tuner.task.test.ids, pred, sc)
        tracker.set_tags(rid, {"final": key, "refit": str(spec.refit).lower()})
        tracker.clear_tag(rid, "error")  # left by an interrupted run; the study is done
        tracker.end_run(rid)
    return result


def log_study_plots(tracker: Any, run_id: str, study: Any) -> None:
    """Optuna's optimisation history, parameter importances and parallel coordinates as PNG artifacts
    (``study_plots/``) of the parent run; a plot that cannot be drawn is left out, never fatal."""
    import logging
    import tempfile

    from mlbench.runs.tuning.plots import save_study_plots

    try:
        with tempfile.TemporaryDirectory(prefix="mlbench-plots-") as tmp:
            for path in save_study_plots(study, tmp):
                tracker.log_artifact_file(run_id, path, "study_plots")
    except Exception as exc:  # plots are a convenience: a drawing failure must not cost the study's result
        logging.getLogger(__name__).warning("could not save the study plots: %s", exc)


def result_from_run(tuner: "Tuner", run: Any, best: Any) -> RunResult:
    """The result of a study whose best trial was already evaluated on test, read back from its parent run."""
    m = run.data.metrics
    return RunResult(
        method=tuner.method_cls.name,
        task=tuner.task.name,
        seed=tuner.spec.seed,
        params=dict(best.user_attrs.get(ATTR_PARAMS) or best.params),
        test={k[5:]: v for k, v in m.items() if k.startswith("test_")},
        valid={k[12:]: v for k, v in m.items() if k.startswith("final_valid_")},
        fit_seconds=m.get("fit_seconds", float("nan")),
        predict_seconds=m.get("predict_seconds", float("nan")),
        run_id=run.info.run_id,
    )


def merge_splits(train: Split, valid: Split) -> Split:
    """train+valid as one split, for refitting the best configuration."""
    import scipy.sparse as sp

    return Split(
        name="train+valid",
        ids=train.ids + valid.ids,
        texts=train.texts + valid.texts,
        label_seqs=train.label_seqs + valid.label_seqs,
        labels=train.labels,
        Y=sp.vstack([train.Y, valid.Y]).tocsr(),
    )
