"""The benchmark matrix on several workers: every cell once in the store, a killed worker's cell run again
exactly once, two commands sharing a PostgreSQL + MLflow-server store splitting a suite, and Ctrl-C leaving no
process and no claim behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

#: A BR that writes its process id to $SLEEPY_DIR on entering fit, then sleeps `sleep` seconds.
SLEEPY = textwrap.dedent('''
    import os
    import time

    from mlbench.api import Param
    from mlbench.methods.br import BinaryRelevance


    class Sleepy(BinaryRelevance):
        name = "sleepy"
        description = "BR that sleeps before fitting"
        defaults = {**BinaryRelevance.defaults, "sleep": 0.0}
        param_specs = {**BinaryRelevance.param_specs, "sleep": Param("float", low=0)}

        def fit(self, train, valid, ctx):
            folder = os.environ.get("SLEEPY_DIR")
            if folder:
                with open(os.path.join(folder, f"{os.getpid()}-{ctx.seed}-{time.time_ns()}"), "w"):
                    pass
            time.sleep(float(self.params["sleep"]))
            return super().fit(train, valid, ctx)
''')


@pytest.fixture
def work(tmp_path, monkeypatch):
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    (tmp_path / "pids").mkdir()
    monkeypatch.setenv("SLEEPY_DIR", str(tmp_path / "pids"))
    monkeypatch.setenv("MLBENCH_NO_PROGRESS", "1")
    return tmp_path


def suite(folder: Path, sleep: float, seeds: str = "[0, 1, 2]", tasks: str = "[synthetic]") -> str:
    path = folder / "suite.yaml"
    path.write_text(f"name: s\nmethods:\n  sleepy: {{sleep: {sleep}}}\ntasks: {tasks}\nseeds: {seeds}\n")
    return str(path)


def bench(folder: Path, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlbench.cli.main", "bench", *args, "--plugin",
                             str(folder / "sleepy.py"), "-q"], cwd=kw.pop("cwd", folder), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def runs_by_cell(uri: str) -> Counter:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    out: Counter = Counter()
    for exp in client.search_experiments():
        for r in client.search_runs([exp.experiment_id]):
            if r.data.tags.get("mlbench.role") == "parent":
                out[(r.data.tags["mlbench.task"], r.data.tags["mlbench.seed"], r.info.status)] += 1
    return out


def claims(url: str) -> list[dict]:
    from mlbench.runs.cell_claims import ClaimBoard

    return ClaimBoard(url).rows()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_local_workers_run_every_cell_once(work):
    proc = bench(work, suite(work, 0.5, seeds="[0, 1, 2]", tasks="[synthetic, synthetic-shuffled]"), "--workers", "2")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert "6 run, 0 already complete, 0 failed" in out and "cells: 6 done, 0 running, 0 failed" in out
    runs = runs_by_cell(f"sqlite:///{work / 'mlflow.db'}")
    assert sorted(runs.values()) == [1] * 6 and all(status == "FINISHED" for _, _, status in runs)
    rows = claims(f"sqlite:///{work / 'mlflow.db.claims.db'}")
    assert len(rows) == 6 and {r["status"] for r in rows} == {"done"} and {r["attempts"] for r in rows} == {1}
    assert len({p.name.split("-")[0] for p in (work / "pids").iterdir()}) == 2  # both workers took cells
    started: dict[str, list[tuple[int, int]]] = {}
    for p in (work / "pids").iterdir():
        pid, seed, ns = p.name.split("-")
        started.setdefault(pid, []).append((int(ns), int(seed)))
    # each worker was given one task's cells (one method on one task shares its caches) and runs them in suite
    # order, seed 0 first (a worker's queue alone would run newest first); an idle worker may steal later ones
    assert all(min(v)[1] == 0 for v in started.values()), started
    assert len(list((work / "bench-logs" / "s" / "synthetic").glob("sleepy-seed*.log"))) == 3
    again = bench(work, suite(work, 0.5, seeds="[0, 1, 2]", tasks="[synthetic, synthetic-shuffled]"), "--workers", "2")
    out, _ = again.communicate(timeout=600)
    assert "0 run, 6 already complete" in out


def test_a_killed_worker_s_cell_runs_again_exactly_once(work):
    proc = bench(work, suite(work, 6.0, seeds="[0]"), "--workers", "2")
    deadline = time.monotonic() + 120
    while not list((work / "pids").iterdir()):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read() if proc.poll() is not None else ""
        time.sleep(0.2)
    victim = int(next((work / "pids").iterdir()).name.split("-")[0])
    os.kill(victim, signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    runs = runs_by_cell(f"sqlite:///{work / 'mlflow.db'}")
    assert runs[("synthetic", "0", "FINISHED")] == 1 and runs[("synthetic", "0", "KILLED")] == 1, runs
    (row,) = claims(f"sqlite:///{work / 'mlflow.db.claims.db'}")
    assert row["status"] == "done" and row["attempts"] == 2
    assert len(list((work / "pids").iterdir())) == 2  # the cell was started twice, not more


def test_two_commands_on_one_shared_store_split_a_suite(work, postgres_url, mlflow_server):  # noqa: F811
    path = suite(work, 2.0, seeds="[0, 1, 2, 3]")
    store = ["--tracking-uri", mlflow_server, "--claims", postgres_url]
    procs = []
    for name in ("machine0", "machine1"):
        (work / name).mkdir()
        procs.append(bench(work, path, *store, cwd=work / name))
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    runs = runs_by_cell(mlflow_server)
    assert {k: v for k, v in runs.items() if k[2] == "FINISHED"} == {("synthetic", str(s), "FINISHED"): 1
                                                                      for s in range(4)}
    assert sum(int(o.split(" run, ")[0].rsplit("\n", 1)[-1]) for o in outs) == 4  # 4 cells run between them
    assert {r["status"] for r in claims(postgres_url)} == {"done"}
    for name in ("machine0", "machine1"):
        assert not list((work / name).glob("*.db")), "nothing is written locally"


def test_ctrl_c_stops_every_worker_and_leaves_no_claim(work):
    proc = bench(work, suite(work, 60.0, seeds="[0, 1, 2, 3]"), "--workers", "2", start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list((work / "pids").iterdir())) < 2:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    workers = {int(p.name.split("-")[0]) for p in (work / "pids").iterdir()}
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    time.sleep(1)
    assert not [pid for pid in workers if alive(pid)]
    assert not [r for r in claims(f"sqlite:///{work / 'mlflow.db.claims.db'}") if r["status"] == "running"]
    assert not [k for k in runs_by_cell(f"sqlite:///{work / 'mlflow.db'}") if k[2] == "RUNNING"]
