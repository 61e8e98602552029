"""The runner: one parent run per (method, task, seed) with its metrics, tags and predictions; a failing fit
is a FAILED run with its error; seeds aggregate; the summary table."""

from __future__ import annotations

import numpy as np
import pytest

from mlbench.api import MlbenchError
from mlbench.data.tasks import get_task
from mlbench.methods.br import BinaryRelevance
from mlbench.runs.runner import RunResult, aggregate, format_summary, resolve_device, run_once
from mlbench.runs.tracking import Tracker


@pytest.fixture
def tracker(tmp_path, monkeypatch):
    monkeypatch.setenv("MLBENCH_NO_PROGRESS", "1")
    return Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_dir=tmp_path / "mlartifacts")


@pytest.fixture(scope="module")
def task():
    return get_task("synthetic")


def test_a_run_logs_metrics_identity_and_predictions(tracker, task):
    result = run_once(BinaryRelevance, task, {"C": 10}, seed=3, device="cpu", tracker=tracker, progress=False)
    run = tracker.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["mlbench.seed"] == "3" and tags["mlbench.fingerprint"] == task.fingerprint
    assert tags["mlbench.config_label"] == "--param C=10" and len(tags["mlbench.code_digest"]) == 12
    assert run.data.metrics["test_micro_f1"] == pytest.approx(result.test["micro_f1"])
    ids, pred, scores = tracker.download_predictions(result.run_id)
    assert list(ids) == list(task.test.ids) and pred.shape == task.test.Y.shape and scores is not None


class Broken(BinaryRelevance):
    name = "broken"

    def fit(self, train, valid, ctx):
        raise MlbenchError("broken: cannot fit")


def test_a_failing_fit_is_recorded_as_failed_with_its_error(tracker, task):
    with pytest.raises(MlbenchError, match="cannot fit"):
        run_once(Broken, task, {}, seed=0, device="cpu", tracker=tracker, progress=False)
    exp = tracker.experiment_id(task.name)
    (run,) = tracker.find_runs(exp, {"method": "broken"})
    assert run.info.status == "FAILED" and "cannot fit" in run.data.tags["mlbench.error"]
    assert tracker.finished_parent_runs(task.name, {"method": "broken"}) == []


def test_without_a_store_the_run_still_returns_its_scores(task):
    result = run_once(BinaryRelevance, task, {}, seed=0, device="cpu", tracker=None, progress=False)
    assert result.run_id is None and 0.5 < result.test["micro_f1"] <= 1.0


def _result(seed: int, f1: float) -> RunResult:
    return RunResult("br", "t", seed, {}, {"micro_f1": f1}, {}, 1.0, 0.1)


def test_aggregate_is_mean_and_sample_std_over_seeds_and_the_summary_shows_it():
    agg = aggregate([_result(0, 0.8), _result(1, 0.9)])
    assert agg["micro_f1"][0] == pytest.approx(0.85) and agg["micro_f1"][1] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    table = format_summary([_result(0, 0.8), _result(1, 0.9)])
    assert "mean±std" in table and "0.8500±0.0707" in table


def test_cpu_only_methods_run_on_the_cpu_and_an_unknown_device_is_refused():
    assert resolve_device("auto", BinaryRelevance) == "cpu"
    with pytest.raises(MlbenchError, match="unknown device"):
        resolve_device("tpu", BinaryRelevance)
