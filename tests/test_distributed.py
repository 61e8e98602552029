"""Optuna's distributed mode for real: a PostgreSQL storage, an MLflow tracking server, two mlbench workers.

The README's multi-machine recipe, on one machine: a PostgreSQL server from
Debian's packages (``initdb``/``pg_ctl`` into a temporary folder, on a free port
of 127.0.0.1; as the ``postgres`` user when run as root, since PostgreSQL
refuses root) and ``mlflow server`` on another free port; then the same
``mlbench run --trials N --storage postgresql://... --tracking-uri http://...``
twice at once, each from its own folder as if on its own machine. The study
must end with exactly N trials and every trial must appear once as a nested
run under one parent run. Skipped, with the reason, only where the PostgreSQL
server or the psycopg2 driver is not installed or the server cannot start;
CI installs both (``.ci/run``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

N_TRIALS = 8

# A method that sleeps per epoch, so both workers are busy at the same time.
PLUGIN = textwrap.dedent(
    '''
    import time

    import numpy as np
    import scipy.sparse as sp

    from mlbench.api import Method, as_binary_csr


    class Sleepy(Method):
        name = "sleepy"
        description = "test double: a slow curve whose height is its quality"
        defaults = {"quality": 0.5, "epochs": 3, "sleep": 0.4}

        @classmethod
        def search_space(cls, trial):
            return {"quality": trial.suggest_float("quality", 0.0, 1.0)}

        def fit(self, train, valid, ctx):
            for epoch in range(1, self.params["epochs"] + 1):
                time.sleep(self.params["sleep"])
                ctx.report(epoch, {"valid_micro_f1": self.params["quality"] * (1 - 0.5 ** epoch)})
            return self

        def predict(self, split):
            keep = (np.arange(len(split)) < round(self.params["quality"] * len(split))).astype(np.int8)
            return as_binary_csr(sp.csr_matrix(split.Y.multiply(keep[:, None])), len(split), split.n_labels)
    '''
)


def test_two_workers_on_postgresql_and_a_tracking_server(postgres_url, mlflow_server, tmp_path):
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.trial import TrialState

    plugin = tmp_path / "sleepy.py"
    plugin.write_text(PLUGIN)
    command = [sys.executable, "-m", "mlbench.cli.main", "run", "--method", "sleepy", "--task", "synthetic",
               "--plugin", str(plugin), "--trials", str(N_TRIALS), "--storage", postgres_url,
               "--tracking-uri", mlflow_server, "--no-predictions", "-q"]
    env = {**os.environ, "MLBENCH_NO_PROGRESS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    workers = []
    for i in range(2):  # two "machines": separate folders, nothing shared but the two servers
        cwd = tmp_path / f"machine{i}"
        cwd.mkdir()
        workers.append(subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True))
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    for w, out in zip(workers, outputs):
        assert w.returncode == 0, out
    for i in range(2):
        assert not list((tmp_path / f"machine{i}").glob("*.db")), "nothing should be written locally"

    from mlbench.runs.store import with_postgres_driver

    storage = optuna.storages.RDBStorage(with_postgres_driver(postgres_url))
    (summary,) = optuna.study.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    trials = study.trials
    assert len(trials) == N_TRIALS and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert sorted(t.number for t in trials) == list(range(N_TRIALS))
    assert len({t.params["quality"] for t in trials}) == N_TRIALS  # no configuration drawn twice
    # both processes ran trials
    owners = {t.user_attrs["mlbench.owner"]["pid"] for t in trials}
    assert len(owners) == 2, owners

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("synthetic")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("mlbench.role") == "parent"]
    assert len(parents) == 1, [r.info.run_id for r in parents]
    parent = parents[0]
    assert parent.data.tags["mlbench.study"] == summary.study_name
    assert parent.info.status == "FINISHED" and "test_micro_f1" in parent.data.metrics
    assert parent.data.tags["mlbench.best_trial"] == str(study.best_trial.number)
    children = [r for r in runs if r.data.tags.get("mlbench.role") == "trial"]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    numbers = sorted(int(r.data.tags["mlbench.trial"]) for r in children)
    assert numbers == list(range(N_TRIALS))  # every trial exactly once
    by_number = {t.number: t for t in trials}
    for r in children:
        t = by_number[int(r.data.tags["mlbench.trial"])]
        assert r.data.tags["mlbench.state"] == t.state.name
        assert r.info.status == ("FINISHED" if t.state == TrialState.COMPLETE else "KILLED")
        curve = client.get_metric_history(r.info.run_id, "valid_micro_f1")
        assert [m.value for m in sorted(curve, key=lambda m: m.step)] == pytest.approx(
            [t.intermediate_values[i] for i in sorted(t.intermediate_values)])
    # the process that ended the last trial evaluated on test; the other said the study was still going
    assert sum("evaluating the best configuration" in out for out in outputs) >= 1
