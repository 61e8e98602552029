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

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from servers import wait_until_healthy

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin_dir() -> Path | None:
    """Debian keeps the server programs out of PATH, under /usr/lib/postgresql/<version>/bin."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                    if Path(p).parent.name.isdigit() else 0, reverse=True):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    return None


@pytest.fixture(scope="module")
def postgres_url():
    try:
        import psycopg2
    except ImportError:
        pytest.skip("the psycopg2 driver is not installed (pip install 'mlbench-harness[distributed]')")
    bindir = postgres_bin_dir()
    if bindir is None:
        pytest.skip("PostgreSQL server programs (initdb, pg_ctl) not found; on Debian: apt-get install postgresql")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="mlbench-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        try:
            pg = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the PostgreSQL server as")
        os.chown(base, pg.pw_uid, pg.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else None
        if as_user is None:
            pytest.skip("running as root without runuser to start PostgreSQL as the postgres user")
    port = free_port()
    data = base / "data"
    try:
        subprocess.run(as_user + [str(bindir / "initdb"), "-D", str(data), "-U", "mlbench", "--auth=trust",
                                  "-E", "UTF8", "--no-sync"], check=True, capture_output=True, text=True)
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w",
                                  "-t", "60", "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
                                  "start"], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not start: {exc.stderr.strip() or exc.stdout.strip()} {log[-500:]}")
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="mlbench", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE optuna")
        conn.close()
        yield f"postgresql://mlbench@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        cwd=root, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, (root / "server.log").read_text)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


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

    from mlbench.runs.tuning.study import with_postgres_driver

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
