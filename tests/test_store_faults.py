"""Store faults are not method failures; no secret from a URI reaches a store or the output.

A trial that meets a dead tracking server or a read-only store is interrupted (queued again, not counted),
and the run stops in one ``mlbench: error:`` line; the same command resumes once the store is back. The
tracking store is probed before any data is read, and two processes may create a fresh store at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from mlbench.cli.main import main
from mlbench.runs.redaction import redact

optuna = pytest.importorskip("optuna")
from optuna.trial import TrialState  # noqa: E402

SECRET = "S3cretPw42"

# A method whose second fit (when a "hold" file exists) waits for a "go" file before it reports an epoch:
# the test stops the store in between, so the report is the trial's first store call after the fault.
PLUGIN = textwrap.dedent(
    '''
    import time
    from pathlib import Path

    import numpy as np
    import scipy.sparse as sp

    from mlbench.api import Method, as_binary_csr


    class Holding(Method):
        name = "holding"
        description = "test double: waits in its second fit while the test breaks the store"
        defaults = {"quality": 0.5}

        @classmethod
        def search_space(cls, trial):
            return {"quality": trial.suggest_float("quality", 0.0, 1.0)}

        def fit(self, train, valid, ctx):
            n = len(list(Path(".").glob("fit-*"))) + 1
            Path(f"fit-{n}").write_text(str(self.params["quality"]))
            if n == 2 and Path("hold").exists():
                deadline = time.monotonic() + 60
                while not Path("go").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
            ctx.report(1, {"valid_micro_f1": self.params["quality"]})
            return self

        def predict(self, split):
            keep = (np.arange(len(split)) < round(self.params["quality"] * len(split))).astype(np.int8)
            return as_binary_csr(sp.csr_matrix(split.Y.multiply(keep[:, None])), len(split), split.n_labels)
    '''
)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLBENCH_NO_PROGRESS", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "holding.py").write_text(PLUGIN)
    return tmp_path


def run_args(workdir: Path, trials: int, *extra: str) -> list[str]:
    return ["run", "--method", "holding", "--task", "synthetic", "--plugin", str(workdir / "holding.py"),
            "--trials", str(trials), "--no-predictions", *extra]


def cli(workdir: Path, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLBENCH_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "mlbench.cli.main", *args], cwd=workdir, env=env, text=True,
                          capture_output=True, timeout=timeout)


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def load_study(storage: str = "sqlite:///optuna.db"):
    (summary,) = optuna.study.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def assert_one_error_line(proc: subprocess.CompletedProcess) -> str:
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("mlbench: error:")]
    assert len(errors) == 1, output
    return errors[0]


# ------------------------------------------------------------------ redaction


@pytest.mark.parametrize("text, expected", [
    ("postgresql://bob:pw@db:5432/optuna", "postgresql://***@db:5432/optuna"),
    ("http://bob@host:5000/", "http://***@host:5000/"),
    ("sqlite:///optuna.db?password=pw&timeout=5", "sqlite:///optuna.db?password=***&timeout=5"),
    # SQLAlchemy splits a query on "&" only: TOKEN's value runs to the next "&", and all of it is masked
    ("x://h/d?a=1&TOKEN=t;secret=s&key=k&pwd=p&passwd=q&sslpassword=r",
     "x://h/d?a=1&TOKEN=***&key=***&pwd=***&passwd=***&sslpassword=***"),
    ("cannot open 'postgresql://u:pw@h/db?sslpassword=z': refused", "cannot open 'postgresql://***@h/db?sslpassword=***': refused"),
    ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
    ("a key=value outside a URI stays", "a key=value outside a URI stays"),
    # passwords as the drivers read them, however they are spelt
    ("store postgresql://bob:pa/ss@db/optuna: refused", "store postgresql://***@db/optuna: refused"),
    ("postgresql+psycopg2://bob:p@ss@db/optuna", "postgresql+psycopg2://***@db/optuna"),
    ("postgresql://bob:p%2Fss%40x@db/optuna", "postgresql://***@db/optuna"),
    ("mysql+pymysql://u:pw@h:3306/db?ssl_key=/k&password=x", "mysql+pymysql://***@h:3306/db?ssl_key=/k&password=***"),
    ("http://user:pa/ss@host:5000/x", "http://***@host:5000/x"),
    ("https://tok3n@host/api?token=abc#top", "https://***@host/api?token=***#top"),
    ("sqlite:////data/a@b/mlflow.db", "sqlite:////data/a@b/mlflow.db"),  # an "@" in a path is no user info
    ("http://***@127.0.0.1:9/", "http://***@127.0.0.1:9/"),  # masking twice changes nothing
])
def test_redact_masks_user_info_and_password_like_parameters(text, expected):
    assert redact(text) == expected


def test_a_uri_given_to_mlbench_is_masked_wherever_its_secret_appears():
    """A password with a space ends a URI in running text before its "@": the URI as given is remembered, so
    it and its password are masked even where no parser could find them."""
    from mlbench.runs.redaction import remember

    uri = "postgresql://bob:open sesame/42@db/optuna"
    remember(uri)
    text = f"cannot open {uri}; the server said 'password open sesame/42 refused'"
    assert redact(text) == "cannot open postgresql://***@db/optuna; the server said 'password *** refused'"


# ------------------------------------------------------------------ the tracking store is probed first


@pytest.mark.parametrize("uri", ["sqlite:////proc/x/mlflow.db", "http://127.0.0.1:9/"])
@pytest.mark.slow
def test_a_bad_tracking_store_fails_in_one_line_before_any_data_is_read(workdir, capsys, monkeypatch, uri):
    import mlbench.data.tasks

    def no_data(*args, **kwargs):
        raise AssertionError("the task was loaded before the store was probed")

    monkeypatch.setattr(mlbench.data.tasks, "get_task", no_data)
    t0 = time.monotonic()
    assert main(["run", "--method", "br", "--task", "synthetic", "--tracking-uri", uri]) == 1
    err = capsys.readouterr().err
    assert time.monotonic() - t0 < 30
    (line,) = [x for x in err.splitlines() if x.strip()]
    assert line.startswith("mlbench: error: tracking store ") and uri.rstrip("/") in line, err


def _half_made_store(path: Path, with_an_experiment: bool) -> None:
    """A store as a Ctrl-C in the middle of MLflow's migrations left it (before mlbench built stores whole):
    tables made by later migrations than the recorded revision, one table still missing."""
    import mlflow.store
    from alembic.script import ScriptDirectory

    from mlbench.runs.store import make_mlflow_schema

    make_mlflow_schema(f"sqlite:///{path}")
    base = ScriptDirectory(str(Path(mlflow.store.__file__).parent / "db_migrations")).get_base()
    with sqlite3.connect(path) as con:
        con.execute("UPDATE alembic_version SET version_num = ?", (base,))
        con.execute("DROP TABLE jobs")
        if with_an_experiment:
            con.execute("INSERT INTO experiments (experiment_id, name, lifecycle_stage) VALUES (7, 'mine', 'active')")


@pytest.mark.slow
def test_a_store_left_half_made_and_empty_is_built_again(tmp_path, monkeypatch):
    from mlbench.runs import tracking

    monkeypatch.setattr(tracking, "OPEN_ATTEMPTS", 1)  # no waiting for a creator that is long gone
    _half_made_store(tmp_path / "mlflow.db", with_an_experiment=False)
    tracker = tracking.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_dir=tmp_path / "art")
    run = tracker.start_run(tracker.experiment_id("synthetic"), "r", {"method": "br"})
    tracker.end_run(run)
    assert [r.info.run_id for r in tracker.finished_parent_runs("synthetic")] == [run]


def test_a_half_made_store_that_holds_anything_is_left_alone(tmp_path, monkeypatch):
    from mlbench.runs import tracking
    from mlbench.runs.store import TrackingStoreError

    monkeypatch.setattr(tracking, "OPEN_ATTEMPTS", 1)
    _half_made_store(tmp_path / "mlflow.db", with_an_experiment=True)
    with pytest.raises(TrackingStoreError, match="tracking store sqlite:///"):
        tracking.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_dir=tmp_path / "art")
    with sqlite3.connect(tmp_path / "mlflow.db") as con:  # not built again: the user's experiment is there
        assert con.execute("SELECT name FROM experiments WHERE experiment_id = 7").fetchall() == [("mine",)]


def test_a_fresh_store_appears_only_once_complete(tmp_path, monkeypatch):
    """The schema is built in a temporary file beside the store and renamed into place; an error half-way
    leaves neither the store nor the temporary file."""
    from mlbench.runs import store

    def fails_half_way(uri: str) -> None:
        store.make_mlflow_schema(uri)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.create_sqlite_atomically(f"sqlite:///{tmp_path / 'mlflow.db'}", fails_half_way)
    assert list(tmp_path.iterdir()) == []
    assert store.create_sqlite_atomically(f"sqlite:///{tmp_path / 'mlflow.db'}", store.make_mlflow_schema)
    assert [p.name for p in tmp_path.iterdir()] == ["mlflow.db"]
    assert not store.create_sqlite_atomically(f"sqlite:///{tmp_path / 'mlflow.db'}", store.make_mlflow_schema)


@pytest.mark.slow
def test_two_processes_create_a_fresh_store_at_once(workdir):
    args = ["run", "--method", "br", "--task", "synthetic", "--no-predictions", "--quiet"]
    env = {**os.environ, "MLBENCH_NO_PROGRESS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "mlbench.cli.main", *args], cwd=workdir, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1)
    second = cli(workdir, args)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in err + second.stderr


# ------------------------------------------------------------------ store faults during a trial


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` read-only for this process: immutable for root (file modes do not stop root), else mode 0444."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available: cannot make a file read-only for root")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        return
    path.chmod(0o444)
    try:
        yield
    finally:
        path.chmod(0o644)


@pytest.mark.slow
def test_a_read_only_store_interrupts_the_trial_and_the_same_command_resumes(workdir):
    Path("hold").write_text("")
    proc = subprocess.Popen([sys.executable, "-m", "mlbench.cli.main", *run_args(workdir, 3)], cwd=workdir,
                            env={**os.environ, "MLBENCH_NO_PROGRESS": "1"}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(Path("fit-2"))
    with read_only(Path("mlflow.db")):
        Path("go").write_text("")
        out, err = proc.communicate(timeout=120)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert proc.returncode == 1, err
    line = assert_one_error_line(done)
    assert "tracking store" in line and "rerun the same command" in line

    study = load_study()
    (interrupted,) = [t for t in study.trials if t.state == TrialState.FAIL]
    assert "mlbench.error" not in interrupted.user_attrs  # interrupted, not a method failure

    Path("hold").unlink()
    assert main(run_args(workdir, 3)) == 0
    study = load_study()
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    (retry,) = [t for t in complete if t.system_attrs.get("failed_trial") == interrupted.number]
    assert retry.params == interrupted.params


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(workdir: Path, port: int) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("mlflow")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mlflow"]
    server = subprocess.Popen(
        [*cmd, "server", "--backend-store-uri", f"sqlite:///{workdir / 'server.db'}", "--artifacts-destination",
         str(workdir / "server-artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return server
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "the MLflow server did not start"
            time.sleep(0.3)


def _stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, 9)
    server.wait(timeout=30)


@pytest.mark.slow
def test_a_tracking_server_killed_mid_study(workdir):
    """Server killed during trial 1: one line, exit 1, within 60 s; restarted: exactly N complete trials."""
    port = _free_port()
    uri = f"http://mlbench:{SECRET}@127.0.0.1:{port}"
    storage = f"sqlite:///optuna.db?password={SECRET}"
    args = run_args(workdir, 3, "--tracking-uri", uri, "--storage", storage)
    server = _start_server(workdir, port)
    try:
        Path("hold").write_text("")
        env = {**os.environ, "MLBENCH_NO_PROGRESS": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "mlbench.cli.main", *args], cwd=workdir, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(Path("fit-2"))
        _stop_server(server)
        t0 = time.monotonic()
        Path("go").write_text("")
        out, err = proc.communicate(timeout=120)
        assert time.monotonic() - t0 < 60
        dying = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert proc.returncode == 1, err
        line = assert_one_error_line(dying)
        assert "tracking store http://***@127.0.0.1" in line and "rerun the same command" in line

        study = load_study(storage)
        (interrupted,) = [t for t in study.trials if t.state == TrialState.FAIL]
        assert "mlbench.error" not in interrupted.user_attrs

        Path("hold").unlink()
        server = _start_server(workdir, port)
        resumed = cli(workdir, args)
        assert resumed.returncode == 0, resumed.stderr
        assert "View run" not in resumed.stdout + resumed.stderr
    finally:
        _stop_server(server)

    study = load_study(storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3 and sum(t.state != TrialState.FAIL for t in study.trials) == 3
    (retry,) = [t for t in complete if t.system_attrs.get("failed_trial") == interrupted.number]
    assert retry.params == interrupted.params

    # every trial once in MLflow, and no secret anywhere: not in a table, not in the output
    con = sqlite3.connect(workdir / "server.db")
    trial_tags = con.execute("SELECT run_uuid, value FROM tags WHERE key = 'mlbench.trial'").fetchall()
    assert sorted(int(v) for _, v in trial_tags) == sorted(t.number for t in study.trials)
    for db in ("server.db", "optuna.db"):
        con = sqlite3.connect(workdir / db)
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for row in con.execute(f'SELECT * FROM "{table}"'):
                assert SECRET not in repr(row), (db, table, row)
    assert SECRET not in out + err + resumed.stdout + resumed.stderr
    assert "password=***" in resumed.stderr  # the study line names the storage, masked


def test_a_resumed_study_that_finishes_clears_the_stale_error_tag(workdir):
    from mlflow.tracking import MlflowClient

    assert main(run_args(workdir, 1)) == 0
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    (parent,) = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id],
                                   filter_string="tags.`mlbench.role` = 'parent'")
    client.set_tag(parent.info.run_id, "mlbench.error", "interrupted after 1 of 2 trials; rerun the same command")
    assert main(run_args(workdir, 2)) == 0
    tags = client.get_run(parent.info.run_id).data.tags
    assert "mlbench.error" not in tags and tags["mlbench.trials_complete"] == "2"


@pytest.mark.slow
def test_a_store_fault_as_a_trial_run_starts_interrupts_that_trial(workdir, monkeypatch, capsys):
    """The artifact store fills up just as trial 1's MLflow run is being made: the trial is interrupted, not
    failed; the half-made run is ended (not left RUNNING for a parent or a report to pick up); the rerun ends
    with N complete trials."""
    import errno

    import mlflow

    from mlbench.runs.tracking import RUN_MANIFEST, Tracker

    real = Tracker.log_json

    def full_disk_for_trial_1(self, run_id, name, payload):
        if name == RUN_MANIFEST and payload.get("run_name") == "trial-1":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, run_id, name, payload)

    monkeypatch.setattr(Tracker, "log_json", full_disk_for_trial_1)
    assert main(run_args(workdir, 3)) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    (line,) = [x for x in (out.out + out.err).splitlines() if x.startswith("mlbench: error:")]
    assert "file system" in line or "No space left" in line, line
    study = load_study()
    (interrupted,) = [t for t in study.trials if t.state == TrialState.FAIL]
    assert interrupted.number == 1 and "mlbench.error" not in interrupted.user_attrs
    client = mlflow.MlflowClient("sqlite:///mlflow.db")
    (exp,) = [e for e in client.search_experiments() if e.name == "synthetic"]
    (half_made,) = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_name == "trial-1"]
    assert half_made.info.status == "FAILED" and RUN_MANIFEST in half_made.data.tags["mlbench.error"]

    monkeypatch.setattr(Tracker, "log_json", real)
    assert main(run_args(workdir, 3)) == 0
    study = load_study()
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 3
    assert not [r for r in client.search_runs([exp.experiment_id]) if r.info.status == "RUNNING"]


# ------------------------------------------------------------------ Optuna storages checked before any data


def test_a_storage_that_cannot_be_one_is_refused_before_any_data(tmp_path):
    from mlbench.api import MlbenchError, UsageError
    from mlbench.runs.tuning.study import check_storage, open_storage

    (tmp_path / "text.db").write_text("not a database\n")
    (tmp_path / "good.journal").write_text('{"op_code": 0}\n{"op_code": 1, "half": ')  # a record being written
    (tmp_path / "bad.journal").write_text('{"op_code": 0}\n[1, 2]\n')
    with pytest.raises(UsageError, match="is a folder"):
        check_storage(str(tmp_path))
    with pytest.raises(UsageError, match="is a folder, not a database file"):
        check_storage(f"sqlite:///{tmp_path}")
    with pytest.raises(MlbenchError, match="is not a SQLite database"):
        check_storage(f"sqlite:///{tmp_path / 'text.db'}")
    with pytest.raises(MlbenchError, match="line 2 is not a journal record"):
        check_storage(str(tmp_path / "bad.journal"))
    check_storage(str(tmp_path / "good.journal"))  # Optuna skips an unfinished last line, and so does the check
    storage = open_storage(f"sqlite:///{tmp_path / 'fresh' / 'optuna.db'}")  # a fresh file, made whole
    assert storage.get_all_studies() == []
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == ["optuna.db"]
