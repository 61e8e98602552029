"""The one door to the store: experiments per task, runs with their manifest, parent-run searches, predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from mlbench.api import MlbenchError
from mlbench.runs.tracking import RUN_MANIFEST, Tracker, flatten_params, load_predictions


@pytest.fixture
def tracker(tmp_path):
    return Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_dir=tmp_path / "mlartifacts")


@pytest.mark.slow
def test_an_experiment_per_task_with_its_artifacts_under_the_pinned_folder(tracker, tmp_path):
    exp = tracker.experiment_id("synthetic")
    assert tracker.experiment_id("synthetic") == exp  # found, not created twice
    assert "synthetic" in tracker.experiment_names()
    assert tracker.client.get_experiment(exp).artifact_location == (tmp_path / "mlartifacts" / "synthetic").as_uri()


def test_every_run_starts_with_its_manifest_and_prefixed_tags(tracker, tmp_path):
    exp = tracker.experiment_id("synthetic")
    run_id = tracker.start_run(exp, "br-seed0", {"method": "br", "mlflow.note.content": "x"})
    tags = tracker.get_run(run_id).data.tags
    assert tags["mlbench.method"] == "br" and tags["mlflow.note.content"] == "x"
    local = tracker.client.download_artifacts(run_id, RUN_MANIFEST, str(tmp_path))
    manifest = json.loads(open(local).read())
    assert manifest["run_name"] == "br-seed0" and manifest["tags"]["mlbench.method"] == "br"


def test_finished_parent_runs_leave_out_trials_aggregates_and_unfinished_runs_newest_first(tracker):
    exp = tracker.experiment_id("synthetic")
    older = tracker.start_run(exp, "a", {"method": "br", "seed": "0"})
    tracker.end_run(older)
    newer = tracker.start_run(exp, "b", {"method": "br", "seed": "0"})
    tracker.end_run(newer)
    trial = tracker.start_run(exp, "t", {"method": "br", "role": "trial"}, parent_run_id=newer)
    tracker.end_run(trial)
    aggregate = tracker.start_run(exp, "agg", {"method": "br", "role": "aggregate"})
    tracker.end_run(aggregate)
    failed = tracker.start_run(exp, "f", {"method": "br", "seed": "1"})
    tracker.end_run(failed, "FAILED")
    running = tracker.start_run(exp, "r", {"method": "br", "seed": "2"})
    assert [r.info.run_id for r in tracker.finished_parent_runs("synthetic")] == [newer, older]
    assert tracker.finished_parent_runs("synthetic", {"seed": "1"}) == []
    assert tracker.finished_parent_runs("no-such-task") == []
    assert tracker.get_run(running).info.status == "RUNNING"
    with pytest.raises(ValueError, match="quotes"):
        tracker.finished_parent_runs("synthetic", {"method": "b'r"})


def test_predictions_round_trip_through_the_store(tracker):
    exp = tracker.experiment_id("synthetic")
    run_id = tracker.start_run(exp, "p", {"method": "br"})
    pred = sp.csr_matrix(np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]], dtype=np.int8))
    scores = np.array([[0.9, 0.1, 0.8], [0.2, 0.3, 0.1], [0.0, 0.7, 0.4]], dtype=np.float32)
    tracker.log_predictions(run_id, "test", ("d1", "d2", "d3"), pred, scores)
    ids, back, back_scores = tracker.download_predictions(run_id)
    assert list(ids) == ["d1", "d2", "d3"]
    assert (back != pred).nnz == 0 and np.array_equal(back_scores, scores)
    with pytest.raises(MlbenchError, match="no valid predictions artifact"):
        tracker.download_predictions(run_id, "valid")


def test_load_predictions_reads_without_pickle(tmp_path):
    path = tmp_path / "p.npz"
    np.savez(path, ids=np.array(["a"]), indptr=np.array([0, 1]), indices=np.array([2]), shape=np.array([1, 3]))
    ids, pred, scores = load_predictions(path)
    assert pred.toarray().tolist() == [[0, 0, 1]] and scores is None


def test_params_are_flattened_to_stable_strings():
    assert flatten_params({"a": None, "b": [1, 2], "c": 0.5, "d": "x"}) == {"a": "null", "b": "[1, 2]", "c": "0.5", "d": "x"}
