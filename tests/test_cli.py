"""The command line end to end on the synthetic task, with a real MLflow SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlbench.cli.main import main
from mlbench.cli.options import parse_value
from mlbench.runs.tracking import load_predictions


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("1e-3") == 0.001
    assert parse_value("true") is True and parse_value("None") is None
    assert parse_value("balanced") == "balanced" and parse_value("[1, 2]") == [1, 2]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLBENCH_NO_PROGRESS", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.mark.slow
def test_run_logs_one_complete_mlflow_run(workdir, capsys):
    rc = main(["run", "--method", "br", "--task", "synthetic", "--param", "C=10", "--seeds", "0", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "micro-F1" in out and "mean±std" in out
    assert (workdir / "mlflow.db").exists()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")  # absolute: MLflow caches stores per URI
    exp = client.get_experiment_by_name("synthetic")
    assert exp.artifact_location == (workdir / "mlartifacts" / "synthetic").as_uri()
    runs = client.search_runs([exp.experiment_id], "tags.`mlbench.role` = 'parent'", order_by=["attributes.start_time ASC"])
    assert len(runs) == 2  # one per seed (their mean ± std is a third run, tagged mlbench.role=aggregate)
    run = runs[0]
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    for key in ("method", "task", "fingerprint", "seed", "device", "git_commit", "version.scikit-learn"):
        assert f"mlbench.{key}" in tags, key
    assert tags["mlbench.method"] == "br" and tags["mlbench.seed"] == "0"
    assert run.data.params["C"] == "10" and run.data.params["threshold"] == "0.5"
    m = run.data.metrics
    assert 0.5 < m["test_micro_f1"] <= 1.0 and "test_hamming_loss" in m and "test_lf_micro_f1" in m
    assert "valid_micro_f1" in m and "fit_seconds" in m
    # predictions come back in the test split's order and agree with the logged metric
    from mlbench.metrics import micro_precision_recall_f1
    from mlbench.data.tasks import get_task

    local = client.download_artifacts(run.info.run_id, "predictions_test.npz", str(workdir))
    ids, pred, scores = load_predictions(local)
    task = get_task("synthetic")
    assert list(ids) == list(task.test.ids)
    assert scores.shape == (len(task.test), task.n_labels)
    assert micro_precision_recall_f1(task.test.Y, pred)[2] == pytest.approx(m["test_micro_f1"])
    labels = json.loads(Path(client.download_artifacts(run.info.run_id, "labels.json", str(workdir))).read_text())
    assert labels["labels"] == list(task.labels)


def test_unknown_method_and_task_exit_2_with_one_line(workdir, capsys):
    assert main(["run", "--method", "nope", "--task", "reuters"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown method 'nope'" in err and "br" in err
    assert main(["run", "--method", "br", "--task", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown task 'nope'" in err and "reuters" in err


def test_bad_param_and_preset(workdir, capsys):
    assert main(["run", "--method", "br", "--task", "synthetic", "--param", "nonsense=1"]) == 2
    assert "has no parameter nonsense" in capsys.readouterr().err
    assert main(["run", "--method", "br", "--task", "synthetic", "--param", "C"]) == 2


def test_missing_rcv1_copy_is_one_clear_line(workdir, capsys):
    assert main(["run", "--method", "br", "--task", "rcv1", "--data-dir", str(workdir / "none")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "text_train" in err and "lyrl2004" in err


def test_data_info(workdir, capsys):
    assert main(["data", "info", "synthetic-trim1"]) == 0
    out = capsys.readouterr().out
    assert "train_docs" in out and "top_labels" in out and "fingerprint" in out


def test_check_command(workdir, capsys):
    assert main(["check", "br"]) == 0
    out = capsys.readouterr().out
    assert "13 passed, 0 skipped, 0 failed" in out


def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "mlbench.cli.main", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("mlbench ")


@pytest.mark.e2e
@pytest.mark.slow
def test_quick_start_br_on_reuters(workdir, capsys):
    """The README's main job: BR on Reuters-21578 reaches micro-F1 >= 0.85."""
    from mlbench.api import DataError
    from mlbench.data.tasks import get_task

    try:
        get_task("reuters")
    except DataError as exc:
        pytest.skip(f"Reuters-21578 not available here: {exc}")
    assert main(["run", "--method", "br", "--task", "reuters", "--no-predictions"]) == 0
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")  # absolute: MLflow caches stores per URI
    run = client.search_runs([client.get_experiment_by_name("reuters").experiment_id])[0]
    assert run.data.metrics["test_micro_f1"] >= 0.85
    assert np.isclose(run.data.metrics["test_micro_f1"], 0.858, atol=0.01)
