"""Tuning with Optuna and nested MLflow runs: resume after a kill, parallel workers, failures, seeds, pruning.

A tiny iterative test double (written to a plugin file, so spawned workers and
subprocesses load it the way they load any plugin) reports a validation curve
per epoch whose height is its ``quality`` parameter, and predicts the true
labels of the first ``quality`` fraction of documents: its micro-F1 grows with
``quality``, it can be slowed down (``sleep`` per epoch) and made to fail
(``fail_below``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from mlbench.cli.main import main

optuna = pytest.importorskip("optuna")
from optuna.trial import TrialState  # noqa: E402

PLUGIN = textwrap.dedent(
    '''
    import os
    import signal
    import time
    from pathlib import Path

    import numpy as np
    import scipy.sparse as sp

    from mlbench.api import Method, as_binary_csr


    class FakeIterative(Method):
        name = "fake-iter"
        description = "test double: a per-epoch curve and predictions whose quality is a parameter"
        defaults = {"quality": 0.5, "epochs": 4, "sleep": 0.0, "fail_below": -1.0, "self_signal": "", "signal_at_fit": 0}

        @classmethod
        def search_space(cls, trial):
            return {"quality": trial.suggest_float("quality", 0.0, 1.0)}

        def fit(self, train, valid, ctx):
            q = self.params["quality"]
            if q < self.params["fail_below"]:
                raise ValueError(f"quality {q:.3f} is below fail_below")
            if self.params["self_signal"]:
                # the process stops itself inside its n-th fit, once (a marker file keeps a rerun going)
                count = Path("fits.count")
                n = int(count.read_text()) + 1 if count.exists() else 1
                count.write_text(str(n))
                fire = n == self.params["signal_at_fit"] and not Path("signalled").exists()
            else:
                fire = False
            for epoch in range(1, int(self.params["epochs"]) + 1):
                time.sleep(self.params["sleep"])
                if fire:
                    Path("signalled").write_text("")
                    os.kill(os.getpid(), getattr(signal, "SIG" + self.params["self_signal"]))
                    time.sleep(5)  # SIGINT raises KeyboardInterrupt here; SIGKILL ends the process
                ctx.report(epoch, {"valid_micro_f1": q * (1 - 0.5 ** epoch)})
            return self

        def predict(self, split):
            keep = (np.arange(len(split)) < round(self.params["quality"] * len(split))).astype(np.int8)
            return as_binary_csr(sp.csr_matrix(split.Y.multiply(keep[:, None])), len(split), split.n_labels)
    '''
)

STUDY_PREFIX = "fake-iter-synthetic-seed"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLBENCH_NO_PROGRESS", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "fake_iter.py").write_text(PLUGIN)
    return tmp_path


def base_args(workdir: Path, trials: int, *params: str) -> list[str]:
    args = ["run", "--method", "fake-iter", "--task", "synthetic", "--plugin", str(workdir / "fake_iter.py"),
            "--trials", str(trials), "--no-predictions"]
    for p in params:
        args += ["--param", p]
    return args


def load_study(seed: int = 0):
    storage = optuna.storages.RDBStorage("sqlite:///optuna.db")
    names = [s.study_name for s in optuna.study.get_all_study_summaries(storage) if s.study_name.startswith(
        f"{STUDY_PREFIX}{seed}-")]
    assert len(names) == 1, names
    return optuna.load_study(study_name=names[0], storage=storage)


def has_outcome(t) -> bool:
    return t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        t.state == TrialState.FAIL and "mlbench.error" in t.user_attrs)


def mlflow_client():
    from mlflow.tracking import MlflowClient

    # absolute: MLflow caches one store per URI string for the whole test process
    return MlflowClient(f"sqlite:///{Path.cwd() / 'mlflow.db'}")


def runs_by_role(role: str, experiment: str = "synthetic"):
    client = mlflow_client()
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`mlbench.role` = '{role}'",
                              order_by=["attributes.start_time ASC"], max_results=1000)


def trial_runs_by_number(parent_run_id: str) -> dict[int, list]:
    out: dict[int, list] = {}
    for run in runs_by_role("trial"):
        if run.data.tags.get("mlflow.parentRunId") == parent_run_id:
            out.setdefault(int(run.data.tags["mlbench.trial"]), []).append(run)
    return out


def assert_one_run_per_trial(study, parent_run_id: str) -> dict[int, object]:
    """Every Optuna trial appears exactly once as a nested MLflow run, with a matching state and status."""
    by_number = trial_runs_by_number(parent_run_id)
    numbers = sorted(t.number for t in study.trials)
    assert sorted(by_number) == numbers
    assert all(len(v) == 1 for v in by_number.values()), {k: len(v) for k, v in by_number.items()}
    expected_status = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED"}
    for t in study.trials:
        run = by_number[t.number][0]
        if t.state == TrialState.FAIL:
            errored = "mlbench.error" in t.user_attrs
            assert run.info.status == ("FAILED" if errored else "KILLED"), (t.number, run.info.status)
            assert run.data.tags["mlbench.state"] == "FAIL"
            assert run.data.tags.get("mlbench.error")
        else:
            assert run.info.status == expected_status[t.state], (t.number, t.state, run.info.status)
            assert run.data.tags["mlbench.state"] == t.state.name
    return {k: v[0] for k, v in by_number.items()}


def spawn_run(workdir: Path, args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "MLBENCH_NO_PROGRESS": "1"}
    return subprocess.Popen([sys.executable, "-m", "mlbench.cli.main", *args], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_terminal_like_signals)


def _terminal_like_signals() -> None:
    """Start the command as a shell would: SIGINT delivered and handled by default. A child inherits the
    signal mask and ignored signals of this process, which earlier tests of a full run can leave blocked
    (the suite then saw the command never receive its Ctrl-C)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
@pytest.mark.slow
def test_study_resumes_after_its_process_is_stopped(workdir, sig):
    """Stop the command mid-study, run it again: N trials with an outcome, none lost, none repeated,
    the MLflow runs of finished trials untouched, the same parent run reused."""
    n = 6
    # the command stops itself (Ctrl-C or kill) inside its third trial: deterministic, unlike a signal
    # sent from here, which could land between two trials, or after the last, on a busy machine
    name = "INT" if sig == signal.SIGINT else "KILL"
    args = base_args(workdir, n, "sleep=0.1", f"self_signal={name}", "signal_at_fit=3")
    proc = spawn_run(workdir, args)
    out = proc.communicate(timeout=120)[0]

    study = load_study()
    stopped = [t for t in study.trials if t.state != TrialState.WAITING and not has_outcome(t)]
    assert len(stopped) == 1, [(t.number, t.state) for t in study.trials]
    stopped_number = stopped[0].number
    parent = runs_by_role("parent")
    assert len(parent) == 1
    parent_id = parent[0].info.run_id
    if sig == signal.SIGINT:
        assert proc.returncode == 130, out
        assert "rerun the same command to resume" in out
        # Ctrl-C marked the trial itself and queued its configuration again
        assert stopped[0].state == TrialState.FAIL
        assert [t.state for t in study.trials if t.number > stopped_number] == [TrialState.WAITING]
        assert parent[0].info.status == "KILLED"
        assert trial_runs_by_number(parent_id)[stopped_number][0].info.status == "KILLED"
    else:
        assert proc.returncode == -signal.SIGKILL
        assert stopped[0].state == TrialState.RUNNING  # nobody was left to say otherwise
    before = {num: runs[0] for num, runs in trial_runs_by_number(parent_id).items() if num != stopped_number}
    assert before and all(r.info.status in ("FINISHED", "KILLED", "FAILED") for r in before.values())

    assert main(args) == 0

    study = load_study()
    trials = study.trials
    assert sum(has_outcome(t) for t in trials) == n
    assert len(trials) == n + 1  # the stopped trial stays, marked, beside its retry
    assert len({t.number for t in trials}) == len(trials)
    interrupted = [t for t in trials if not has_outcome(t)]
    assert [t.number for t in interrupted] == [stopped_number]
    assert interrupted[0].state == TrialState.FAIL and "mlbench.error" not in interrupted[0].user_attrs
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == stopped_number]
    assert len(retries) == 1 and retries[0].params == interrupted[0].params and has_outcome(retries[0])
    # no configuration ran twice, apart from the retry of the interrupted one
    configs = [round(t.params["quality"], 12) for t in trials if has_outcome(t)]
    assert len(set(configs)) == n

    runs = assert_one_run_per_trial(study, parent_id)
    assert runs[stopped_number].info.status == "KILLED"
    assert runs[stopped_number].data.tags["mlbench.interrupted"] == "true"
    for num, old in before.items():  # finished trials' runs are intact
        new = runs[num]
        assert new.info.run_id == old.info.run_id and new.info.status == old.info.status
        assert new.data.metrics == old.data.metrics and new.data.params == old.data.params
    (parent_after,) = runs_by_role("parent")
    assert parent_after.info.run_id == parent_id and parent_after.info.status == "FINISHED"
    assert parent_after.data.tags["mlbench.best_trial"] == str(study.best_trial.number)
    assert "test_micro_f1" in parent_after.data.metrics
    assert parent_after.data.metrics["best_valid_micro_f1"] == pytest.approx(study.best_value)


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study(workdir, capfd):
    n = 8
    assert main(base_args(workdir, n, "sleep=0.3", "epochs=5") + ["--n-jobs", "2"]) == 0
    study = load_study()
    assert len(study.trials) == n and all(has_outcome(t) for t in study.trials)
    assert sorted(t.number for t in study.trials) == list(range(n))
    (parent,) = runs_by_role("parent")
    runs = assert_one_run_per_trial(study, parent.info.run_id)
    workers = {r.data.tags["mlbench.worker"] for r in runs.values()}
    assert len(workers) == 2, workers
    assert parent.info.status == "FINISHED" and "test_micro_f1" in parent.data.metrics
    err = capfd.readouterr().err  # the workers' own stderr
    assert "[worker 0]" in err and "[worker 1]" in err


@pytest.mark.slow
def test_a_failing_trial_is_recorded_and_the_study_goes_on(workdir, capsys):
    n = 8
    assert main(base_args(workdir, n, "fail_below=0.4", "epochs=2")) == 0
    study = load_study()
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed, "the seeded draws should include a quality below 0.4"
    assert all("below fail_below" in t.user_attrs["mlbench.error"] for t in failed)
    assert max(t.number for t in study.trials if t.state == TrialState.COMPLETE) > min(t.number for t in failed)
    assert len(study.trials) == n
    (parent,) = runs_by_role("parent")
    runs = assert_one_run_per_trial(study, parent.info.run_id)
    for t in failed:
        run = runs[t.number]
        assert run.info.status == "FAILED"
        assert run.data.tags["mlbench.error"].startswith("ValueError: quality")
    assert parent.info.status == "FINISHED"
    assert "FAIL" in capsys.readouterr().err


@pytest.mark.slow
def test_median_pruner_stops_configurations_that_plateau_low(workdir):
    assert main(base_args(workdir, 16, "epochs=6")) == 0
    study = load_study()
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned and len(pruned) + len(complete) == 16
    # pruned trials stopped early, below what the completed ones reached at the same report
    assert all(len(t.intermediate_values) < 6 for t in pruned)
    assert all(len(t.intermediate_values) == 6 for t in complete)
    assert max(t.params["quality"] for t in pruned) < max(t.params["quality"] for t in complete)
    (parent,) = runs_by_role("parent")
    runs = assert_one_run_per_trial(study, parent.info.run_id)
    client = mlflow_client()
    for t in pruned:
        curve = client.get_metric_history(runs[t.number].info.run_id, "valid_micro_f1")
        assert len(curve) == len(t.intermediate_values)
        assert runs[t.number].data.tags["mlbench.state"] == "PRUNED"


@pytest.mark.slow
def test_seeds_tune_separately_and_aggregate(workdir, capsys):
    seeds = ["0", "1", "2"]
    assert main(base_args(workdir, 3, "epochs=2") + ["--seeds", *seeds]) == 0
    parents = runs_by_role("parent")
    assert sorted(r.data.tags["mlbench.seed"] for r in parents) == seeds
    for seed, parent in zip(seeds, sorted(parents, key=lambda r: r.data.tags["mlbench.seed"])):
        assert len(trial_runs_by_number(parent.info.run_id)) == 3
        assert parent.data.tags["mlbench.study"].startswith(f"{STUDY_PREFIX}{seed}-")
        assert len(load_study(int(seed)).trials) == 3
    (agg,) = runs_by_role("aggregate")
    assert agg.data.tags["mlbench.seeds"] == "0,1,2"
    assert set(agg.data.tags["mlbench.seed_runs"].split(",")) == {r.info.run_id for r in parents}
    for key in ("micro_f1", "macro_f1", "hamming_loss", "subset_01_loss"):
        values = np.array([r.data.metrics[f"test_{key}"] for r in parents])
        assert agg.data.metrics[f"test_{key}_mean"] == pytest.approx(values.mean())
        assert agg.data.metrics[f"test_{key}_std"] == pytest.approx(values.std(ddof=1))
    assert "mean±std" in capsys.readouterr().out

    # the same command again: nothing to run, the same parents and the same aggregate run
    assert main(base_args(workdir, 3, "epochs=2") + ["--seeds", *seeds]) == 0
    assert len(runs_by_role("parent")) == 3 and len(runs_by_role("aggregate")) == 1


@pytest.mark.slow
def test_untuned_seeds_get_an_aggregate_too(workdir):
    assert main(["run", "--method", "fake-iter", "--task", "synthetic", "--plugin", str(workdir / "fake_iter.py"),
                 "--seeds", "0", "1", "--no-predictions"]) == 0
    parents = runs_by_role("parent")
    (agg,) = runs_by_role("aggregate")
    values = np.array([r.data.metrics["test_micro_f1"] for r in parents])
    assert agg.data.metrics["test_micro_f1_mean"] == pytest.approx(values.mean())
    assert agg.data.metrics["n_seeds"] == 2


@pytest.mark.slow
def test_fixed_params_are_not_searched_and_refit_uses_train_and_valid(workdir):
    assert main(base_args(workdir, 2, "quality=0.9", "epochs=3") + ["--refit"]) == 0
    study = load_study()
    assert all(t.params == {} for t in study.trials)  # nothing left to search
    (parent,) = runs_by_role("parent")
    runs = assert_one_run_per_trial(study, parent.info.run_id)
    assert all(r.data.params["quality"] == "0.9" for r in runs.values())
    assert parent.data.params["fixed.quality"] == "0.9"
    assert parent.data.tags["mlbench.refit"] == "true" and parent.data.tags["mlbench.best.epochs"] == "3"
    assert "final_valid_micro_f1" not in parent.data.metrics  # valid was trained on


def test_tuning_options_need_trials(workdir, capsys):
    assert main(["run", "--method", "br", "--task", "synthetic", "--n-jobs", "2"]) == 2
    assert "--n-jobs only apply when tuning" in capsys.readouterr().err


@pytest.mark.slow
def test_a_study_made_for_other_settings_is_refused(workdir, capsys):
    assert main(base_args(workdir, 1, "epochs=1") + ["--study-name", "shared"]) == 0
    assert main(["run", "--method", "br", "--task", "synthetic", "--trials", "1", "--study-name", "shared"]) == 1
    assert "was made for other settings" in capsys.readouterr().err


@pytest.mark.slow
def test_journal_storage(workdir):
    assert main(base_args(workdir, 3, "epochs=2") + ["--storage", "tuning.journal"]) == 0
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend("tuning.journal"))
    (summary,) = optuna.study.get_all_study_summaries(storage)
    assert summary.n_trials == 3


@pytest.mark.slow
def test_a_trial_lost_on_another_machine_is_found_by_its_heartbeat(workdir, monkeypatch):
    """No process to check on another machine: Optuna's heartbeat decides, then the trial is retried."""
    from mlbench.runs.tuning import config as tuning
    from mlbench.runs.tuning.study import open_storage

    monkeypatch.setattr(tuning, "HEARTBEAT_INTERVAL_S", 1)
    monkeypatch.setattr(tuning, "GRACE_PERIOD_S", 2)
    assert main(base_args(workdir, 2, "epochs=1")) == 0
    storage = open_storage("sqlite:///optuna.db")
    study = optuna.load_study(study_name=load_study().study_name, storage=storage)
    lost = study.ask()
    lost.suggest_float("quality", 0.0, 1.0)
    lost.set_user_attr("mlbench.owner", {"host": "another-machine", "pidns": "", "pid": 1, "start": None})
    storage.record_heartbeat(lost._trial_id)
    time.sleep(3)

    assert main(base_args(workdir, 4, "epochs=1")) == 0
    trials = load_study().trials
    assert sum(has_outcome(t) for t in trials) == 4
    (gone,) = [t for t in trials if t.number == lost.number]
    assert gone.state == TrialState.FAIL and not has_outcome(gone)
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == lost.number]
    assert retry.params == gone.params and has_outcome(retry)
