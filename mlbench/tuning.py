"""Hyperparameter search with Optuna, tracked as nested MLflow runs.

One Optuna study per (method, task, seed, preset, fixed parameters, task
fingerprint), kept in a persistent storage, maximises validation micro-F1 over
the method's ``search_space``; the best configuration is then evaluated on test
(optionally refitted on train+valid). The layout in MLflow:

* experiment = task; one **parent** run per study (tag ``mlbench.role=parent``,
  ``mlbench.study``) holding the best configuration (tags ``mlbench.best.<param>``,
  ``mlbench.best_trial``), ``best_valid_micro_f1`` and the test metrics;
* one nested **trial** run per Optuna trial (``mlflow.parentRunId``,
  ``mlbench.trial`` = the trial number) with the trial's parameters, its
  per-epoch validation curve, ``mlbench.state`` (COMPLETE, PRUNED, FAIL) and, for a
  failed trial, ``mlbench.error``. Run status: FINISHED, KILLED (pruned, or
  interrupted) or FAILED.

Counting trials. ``--trials N`` asks for N trials *with an outcome*: complete,
pruned, or failed because the method raised. A trial whose process was killed
(SIGKILL, Ctrl-C, a lost machine) has no outcome: it is marked FAIL without
``mlbench.error`` (MLflow: KILLED, tag ``mlbench.interrupted``), does not count,
and its configuration is queued again once (Optuna's ``failed_trial`` /
``retry_history`` system attributes, as ``RetryHeartbeatStaleTrialCallback``
writes them), so rerunning the command loses no trial and repeats none that
finished. Such trials are found by Optuna's heartbeat on RDB storages (a trial
not heard of for ``GRACE_PERIOD_S``) and at once, on the machine that ran them,
because the process recorded in the trial is gone.

Workers. Any number of processes, on one machine (``--n-jobs``) or many (the
same command against a shared storage), run the same loop: claim a slot while
fewer than N trials are finished or running, run it, repeat. The claim is made
under a lock (a file lock for SQLite and journal files, an advisory lock on
PostgreSQL) so the study never gets more than N trials; the process that sees
the study complete evaluates the best configuration on test.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from mlbench.api import Method, MlbenchError, Split, Task
from mlbench.runner import RunResult, fit_and_evaluate, resolve_device, run_tags

log = logging.getLogger(__name__)

DEFAULT_STORAGE = "sqlite:///optuna.db"
OBJECTIVE = "valid_micro_f1"
#: Optuna heartbeat (RDB storages): a running trial not heard of for GRACE_PERIOD_S is stale.
HEARTBEAT_INTERVAL_S = 20
GRACE_PERIOD_S = 90
#: A running trial that never recorded its process (killed within milliseconds of starting) is stale after this.
UNOWNED_GRACE_S = 600
#: How often an interrupted configuration is queued again before the sampler moves on.
MAX_RETRIES = 1
#: SQLite: how long a writer waits for another process's write lock.
SQLITE_TIMEOUT_S = 120
#: A worker that finds a study created a moment ago waits this long for its creator's MLflow parent run.
PARENT_WAIT_S = 60

# Optuna trial and study user attributes written by mlbench.
ATTR_ERROR = "mlbench.error"
ATTR_OWNER = "mlbench.owner"
ATTR_PARAMS = "mlbench.params"
ATTR_RUN = "mlbench.mlflow_run_id"
ATTR_SURPLUS = "mlbench.surplus"
ATTR_BEST_EPOCHS = "mlbench.best_epochs"
STUDY_CONFIG = "mlbench.config"
STUDY_PARENT = "mlbench.mlflow_parent_run_id"
STUDY_UID = "mlbench.study_uid"

MLFLOW_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED", "INTERRUPTED": "KILLED"}


# ------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class TuneSpec:
    """Everything a worker process needs to join a study (picklable: it crosses a spawn)."""

    method: str
    task: str
    seed: int
    trials: int
    fixed: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None
    data_dir: str | None = None
    device: str = "auto"
    storage: str = DEFAULT_STORAGE
    study_name: str | None = None
    timeout: float | None = None
    n_jobs: int = 1
    refit: bool = False
    tracking_uri: str | None = None  # None: no MLflow
    artifact_dir: str = "mlartifacts"
    plugins: tuple[str, ...] = ()
    progress: bool = True
    log_predictions: bool = True


def default_study_name(method: str, task: Task, seed: int, preset: str | None, fixed: Mapping[str, Any]) -> str:
    """Same command, same name: rerunning it resumes the study.

    The fingerprint keeps studies of differently built tasks apart; fixed
    ``--param`` values change the search, so they get their own study too.
    """
    name = f"{method}-{task.name}-seed{seed}-{preset or 'default'}-{task.fingerprint[:8]}"
    if fixed:
        digest = hashlib.sha256(json.dumps(fixed, sort_keys=True, default=str).encode()).hexdigest()[:8]
        name += f"-p{digest}"
    return name


def redact(url: str) -> str:
    """A storage URL without its password, for logs and tags."""
    if "://" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: show only the scheme
        return url.split("://", 1)[0] + "://..."


# ------------------------------------------------------------------ Optuna pieces


class TrialSeededSampler:
    """TPE whose random state depends on (seed, trial number) only.

    One TPESampler seeded once would replay its first random draws in every
    process that opens the study: a resumed study or a second worker would try
    trial 0's configuration again. Seeding per trial number (numbers are unique
    in a study) keeps a single uninterrupted run reproducible and never repeats
    a draw across processes. Implements Optuna's ``BaseSampler`` protocol by
    delegation (the class is made a subclass lazily, so importing this module
    stays free of Optuna).
    """

    def __init__(self, seed: int) -> None:
        self._seed = int(seed)
        self._inner = self._make(0)

    def _make(self, number: int):
        import optuna

        return optuna.samplers.TPESampler(seed=(self._seed * 1_000_003 + number) % 2**32)

    def before_trial(self, study, trial) -> None:
        self._inner = self._make(trial.number)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def make_sampler(seed: int):
    import optuna

    cls = type("TrialSeededTPESampler", (TrialSeededSampler, optuna.samplers.BaseSampler), {})
    return cls(seed)


def make_pruner():
    import optuna

    # Steps are report indices (0, 1, ...), whatever a method numbers its epochs:
    # no pruning on the first report, so a method that reports once is never pruned.
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


class FixedParamsTrial:
    """An Optuna trial in which ``--param`` values are fixed: suggesting them returns the value, unsearched."""

    def __init__(self, trial: Any, fixed: Mapping[str, Any]) -> None:
        self._trial = trial
        self._fixed = dict(fixed)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._trial, name)
        if not name.startswith("suggest_"):
            return attr

        def suggest(param: str, *args: Any, **kwargs: Any) -> Any:
            if param in self._fixed:
                return self._fixed[param]
            return attr(param, *args, **kwargs)

        return suggest


def _stale_callback_arg() -> str:
    import inspect

    import optuna

    params = inspect.signature(optuna.storages.RDBStorage).parameters
    # renamed in Optuna 4.9; the old name goes in 6.0
    return "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params else "failed_trial_callback"


def open_storage(url: str):
    """An Optuna storage for ``url``: an RDB URL (``sqlite:///``, ``postgresql://``...) or a journal file path."""
    import optuna

    if "://" not in url:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(url)))
    url = with_postgres_driver(url)
    stale_callback: dict[str, Any] = {_stale_callback_arg(): retry_interrupted}
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # several worker processes write the same file: wait for the lock rather than fail
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    else:
        engine_kwargs["pool_pre_ping"] = True
    # Two workers opening a fresh database both create the schema; the loser retries.
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT_INTERVAL_S,
                    grace_period=GRACE_PERIOD_S,
                    **stale_callback,
                )
        except ImportError as exc:
            raise MlbenchError(f"storage {redact(url)}: missing database driver ({exc}); "
                               f"for PostgreSQL: pip install 'mlbench[distributed]'") from exc
        except Exception as exc:
            if attempt == 4:
                raise MlbenchError(f"cannot open Optuna storage {redact(url)}: {type(exc).__name__}: {exc}") from exc
            time.sleep(0.5 + random.random() * 2)
    raise AssertionError("unreachable")


def with_postgres_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed.

    SQLAlchemy 2.0 reads a bare ``postgresql://`` as psycopg2, 2.1 as psycopg 3;
    naming the installed one makes the same URL work under both.
    """
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    for module, dialect in (("psycopg2", "psycopg2"), ("psycopg", "psycopg")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{dialect}://" + url[len("postgresql://"):]
    return url


def retry_interrupted(study, trial) -> None:
    """Queue an interrupted trial's configuration again (at most MAX_RETRIES times).

    Like Optuna's ``RetryHeartbeatStaleTrialCallback`` (same system attributes),
    but without copying the user attributes, which name the dead process.
    """
    import optuna

    history = list(trial.system_attrs.get("retry_history", [])) + [trial.number]
    if len(history) > MAX_RETRIES:
        log.warning("trial %d was interrupted again; its configuration is not retried", trial.number)
        return
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            system_attrs={"failed_trial": history[0], "retry_history": history},
        )
    )


# ------------------------------------------------------------------ processes


def _proc_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (guards against a reused pid), or None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else None


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def owner_record() -> dict[str, Any]:
    """Who runs a trial: enough to tell, on the same machine, that the process is gone."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pidns": _pid_namespace(), "pid": pid, "start": _proc_start_time(pid)}


def owner_is_gone(owner: Mapping[str, Any]) -> bool:
    """True only when the owner ran on this machine (same pid namespace) and its process is gone."""
    if owner.get("host") != socket.gethostname() or owner.get("pidns", "") != _pid_namespace():
        return False
    pid = int(owner.get("pid", -1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):  # a zombie has finished running
            return True
    except OSError:
        pass
    start = owner.get("start")
    return start is not None and _proc_start_time(pid) not in (None, start)


# ------------------------------------------------------------------ study bookkeeping


@dataclass
class Counts:
    complete: int = 0
    pruned: int = 0
    failed: int = 0  # failed with an error: an outcome
    interrupted: int = 0  # failed without an outcome (killed), or surplus: not counted
    running: int = 0
    waiting: int = 0

    @property
    def finished(self) -> int:
        """Trials with an outcome: what --trials counts."""
        return self.complete + self.pruned + self.failed

    def describe(self) -> str:
        parts = [f"{self.complete} complete", f"{self.pruned} pruned", f"{self.failed} failed"]
        if self.interrupted:
            parts.append(f"{self.interrupted} interrupted")
        if self.running:
            parts.append(f"{self.running} running")
        return ", ".join(parts)


def _has_outcome(t) -> bool:
    from optuna.trial import TrialState

    return t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        t.state == TrialState.FAIL and ATTR_ERROR in t.user_attrs
    )


def _occupies_slot(t) -> bool:
    from optuna.trial import TrialState

    return _has_outcome(t) or t.state == TrialState.RUNNING


def count_trials(study) -> Counts:
    from optuna.trial import TrialState

    c = Counts()
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            c.complete += 1
        elif t.state == TrialState.PRUNED:
            c.pruned += 1
        elif t.state == TrialState.FAIL:
            if ATTR_ERROR in t.user_attrs:
                c.failed += 1
            else:
                c.interrupted += 1
        elif t.state == TrialState.RUNNING:
            c.running += 1
        elif t.state == TrialState.WAITING:
            c.waiting += 1
    return c


@contextlib.contextmanager
def claim_lock(storage_url: str, study_name: str, storage: Any) -> Iterator[None]:
    """Serialise "count, then create a trial" between workers so a study never exceeds N trials."""
    if "://" not in storage_url or storage_url.startswith("sqlite"):
        path = storage_url.split(":///", 1)[1] if storage_url.startswith("sqlite") else storage_url
        if not path or path == ":memory:":
            yield
            return
        import tempfile

        from filelock import FileLock

        # The file is local to this machine, and so is the lock (kept out of the user's folder).
        key = hashlib.sha256(f"{Path(path).resolve()}\0{study_name}".encode()).hexdigest()[:16]
        with FileLock(str(Path(tempfile.gettempdir()) / f"mlbench-claim-{key}.lock")):
            yield
        return
    if storage_url.startswith("postgresql"):
        import sqlalchemy

        lock_id = int.from_bytes(hashlib.sha256(f"mlbench:{study_name}".encode()).digest()[:8], "big", signed=True)
        with storage.engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
                conn.commit()
        return
    # Other databases: no lock; the slot check after creating a trial still holds the total at N.
    yield


class _Heartbeat:
    """Optuna's per-trial heartbeat, for our ask/tell loop (``study.optimize`` runs the same thread)."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._storage = storage
        self._trial_id = trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "_Heartbeat":
        interval = getattr(self._storage, "get_heartbeat_interval", lambda: None)()
        if interval:
            def beat() -> None:
                while True:
                    try:
                        self._storage.record_heartbeat(self._trial_id)
                    except Exception as exc:  # a missed beat is not worth killing the trial
                        log.info("heartbeat failed: %s", exc)
                    if self._stop.wait(interval):
                        return

            self._thread = threading.Thread(target=beat, daemon=True, name="mlbench-heartbeat")
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


# ------------------------------------------------------------------ the tuner


class Tuner:
    """One process's view of one study: opens it, runs trials, reconciles MLflow, evaluates the best."""

    def __init__(self, spec: TuneSpec, method_cls: type[Method], task: Task, tracker: Any | None,
                 worker: int | None = None) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.spec = spec
        self.method_cls = method_cls
        self.task = task
        self.tracker = tracker
        self.worker = worker
        self.device = resolve_device(spec.device, method_cls)
        self.study_name = spec.study_name or default_study_name(method_cls.name, task, spec.seed, spec.preset, spec.fixed)
        self.storage = open_storage(spec.storage)
        self.study, self.created = self._open_study()
        self.experiment_id = tracker.experiment_id(task.name) if tracker is not None else None
        self.parent_run_id: str | None = None

    # ---- opening

    def _config(self) -> dict[str, Any]:
        return {
            "method": self.method_cls.name,
            "task": self.task.name,
            "fingerprint": self.task.fingerprint,
            "seed": self.spec.seed,
            "preset": self.spec.preset,
            "fixed": self.spec.fixed,
        }

    def _open_study(self):
        import optuna

        kwargs = dict(storage=self.storage, sampler=make_sampler(self.spec.seed), pruner=make_pruner())
        config = json.loads(json.dumps(self._config(), default=str))
        try:
            study = optuna.create_study(study_name=self.study_name, direction="maximize", **kwargs)
            study.set_user_attr(STUDY_CONFIG, config)
            study.set_user_attr(STUDY_UID, f"{random.getrandbits(64):016x}")
            return study, True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=self.study_name, **kwargs)
        if study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise MlbenchError(f"study {self.study_name!r} minimises; mlbench maximises validation micro-F1")
        stored = study.user_attrs.get(STUDY_CONFIG)
        if stored is not None:
            mismatch = [k for k in ("method", "task", "fingerprint", "seed", "preset", "fixed") if stored.get(k) != config[k]]
            if mismatch:
                what = ", ".join(f"{k}={stored.get(k)!r} (now {config[k]!r})" for k in mismatch)
                raise MlbenchError(
                    f"study {self.study_name!r} in {redact(self.spec.storage)} was made for other settings: {what}; "
                    f"pick another --study-name"
                )
        return study, False

    def attach_parent_run(self) -> None:
        """Find (resume) or create the MLflow parent run of this study."""
        if self.tracker is None:
            return
        tracker = self.tracker
        deadline = time.monotonic() + (0 if self.created else PARENT_WAIT_S)
        while True:
            run_id = self.study.user_attrs.get(STUDY_PARENT)
            if run_id and tracker.get_run(run_id) is not None:
                break
            uid = self.study.user_attrs.get(STUDY_UID, "")
            found = tracker.find_runs(self.experiment_id, {"role": "parent", "study": self.study_name, "study_uid": uid})
            if found:
                run_id = found[0].info.run_id
                self.study.set_user_attr(STUDY_PARENT, run_id)
                break
            if time.monotonic() >= deadline or run_id:
                # New study, or one whose parent run lives in another MLflow store: create it here.
                tags = run_tags(self.method_cls, self.task, self.spec.seed, self.device, self.spec.preset)
                tags.update({
                    "study": self.study_name,
                    "study_uid": uid,
                    "storage": redact(self.spec.storage),
                    "tuned": "true",
                })
                run_id = tracker.start_run(self.experiment_id, f"{self.method_cls.name}-seed{self.spec.seed}-tuned", tags)
                tracker.log_params(run_id, {**{f"fixed.{k}": v for k, v in self.spec.fixed.items()},
                                            "preset": self.spec.preset or "default", "seed": self.spec.seed})
                tracker.log_json(run_id, "labels.json", {"labels": list(self.task.labels),
                                                          "train_frequency": self.task.label_freq.tolist()})
                self.study.set_user_attr(STUDY_PARENT, run_id)
                break
            time.sleep(1.0)  # the creator of the study is making the parent run
            self.study = _reload(self.study)
        self.parent_run_id = run_id
        run = tracker.get_run(run_id)
        if run is not None and run.info.status != "RUNNING":
            tracker.reopen_run(run_id)
        tracker.set_tags(run_id, {"trials": self.spec.trials})

    # ---- recovery

    def recover(self) -> None:
        """Mark trials of dead processes as interrupted (queueing them again), then fix their MLflow runs."""
        self.fail_stale()
        self.reconcile_mlflow()

    def fail_stale(self) -> None:
        """Interrupt the running trials whose process is gone: Optuna's heartbeat (RDB storages), and on
        this machine the process recorded in the trial."""
        import optuna
        from optuna.trial import TrialState

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)  # calls retry_interrupted
        now = datetime.now()
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.user_attrs.get(ATTR_OWNER)
            if owner is not None:
                stale = owner_is_gone(owner)
            else:
                stale = t.datetime_start is not None and now - t.datetime_start > timedelta(seconds=UNOWNED_GRACE_S)
            if stale and self._interrupt(t):
                log.warning("trial %d of study %s was left running by a process that is gone: "
                            "marked interrupted, configuration queued again", t.number, self.study_name)

    def abandon_own_trials(self) -> None:
        """After Ctrl-C: trials this process still holds are interrupted (and queued again)."""
        from optuna.trial import TrialState

        me = owner_record()
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.user_attrs.get(ATTR_OWNER) or {}
            if owner.get("host") == me["host"] and owner.get("pid") == me["pid"]:
                self._interrupt(t)

    def _interrupt(self, t) -> bool:
        """RUNNING -> FAIL (no error: interrupted) and queue the configuration again; False if another got there first."""
        import optuna
        from optuna.trial import TrialState

        try:
            changed = self.study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        if changed:
            retry_interrupted(self.study, t)
        return bool(changed)

    def reconcile_mlflow(self) -> None:
        """Give every RUNNING trial run whose Optuna trial has ended the status of that trial."""
        if self.tracker is None or self.parent_run_id is None:
            return
        from optuna.trial import TrialState

        runs = self.tracker.find_runs(self.experiment_id, {"mlflow.parentRunId": self.parent_run_id, "role": "trial"})
        by_number = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        for run in runs:
            if run.info.status != "RUNNING":
                continue
            t = by_number.get(int(run.data.tags.get("mlbench.trial", -1)))
            if t is None or t.state in (TrialState.RUNNING, TrialState.WAITING):
                continue
            state = trial_state_name(t)
            tags: dict[str, Any] = {"state": "FAIL" if state == "INTERRUPTED" else state}
            if state == "INTERRUPTED":
                tags["interrupted"] = "true"
                tags["error"] = "interrupted: the worker process stopped before the trial ended"
            elif ATTR_ERROR in t.user_attrs:
                tags["error"] = t.user_attrs[ATTR_ERROR]
            if t.value is not None and state == "COMPLETE":
                self.tracker.log_metrics(run.info.run_id, {"final_valid_micro_f1": t.value})
            self.tracker.set_tags(run.info.run_id, tags)
            self.tracker.end_run(run.info.run_id, MLFLOW_STATUS[state])

    # ---- the loop

    def counts(self) -> Counts:
        return count_trials(self.study)

    def run_trials(self, progress: bool = True) -> int:
        """Run trials until the study has its N; return how many this process ran."""
        t0 = time.monotonic()
        ran = 0
        c = self.counts()
        bar = _bar(f"tuning {self.method_cls.name} seed {self.spec.seed}", self.spec.trials, progress)
        bar.update(min(c.finished, self.spec.trials))
        try:
            while True:
                if self.spec.timeout is not None and time.monotonic() - t0 >= self.spec.timeout:
                    break
                trial = self._claim()
                if trial is None:
                    break
                self._run_one(trial)
                ran += 1
                c = self.counts()
                bar.update(min(c.finished, self.spec.trials) - bar.n)
        finally:
            bar.close()
        return ran

    def _claim(self):
        """A new trial, or None when the study already has N trials finished or running."""
        n = self.spec.trials
        self.fail_stale()  # a trial lost elsewhere frees its slot (as Study.optimize does before each trial)
        with claim_lock(self.spec.storage, self.study_name, self.storage):
            c = self.counts()
            if c.finished + c.running >= n:
                return None
            with warnings.catch_warnings():
                # our loop runs Optuna's heartbeat itself (_Heartbeat), as Study.optimize does
                warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
                trial = self.study.ask()
            trial.set_user_attr(ATTR_OWNER, owner_record())
        # Without a lock (other databases) two workers may both have passed the check:
        # the trial's slot is its rank among the trials that count; beyond N it gives way.
        earlier = [t for t in self.study.get_trials(deepcopy=False)
                   if t.number < trial.number and _occupies_slot(t)]
        if len(earlier) >= n:
            from optuna.trial import TrialState

            trial.set_user_attr(ATTR_SURPLUS, True)
            self.study.tell(trial, state=TrialState.FAIL)
            return None
        return trial

    def _trial_line(self, number: int, state: str, detail: str) -> None:
        from tqdm.auto import tqdm

        who = f" [worker {self.worker}]" if self.worker is not None else ""
        tqdm.write(f"trial {number:>3} {state:<8} {detail}{who}", file=sys.stderr)

    def _run_one(self, trial) -> None:
        import optuna

        self._trial_run_id: str | None = None
        try:
            self._run_trial(trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker found no heartbeat for GRACE_PERIOD_S, declared this trial lost and queued
            # its configuration again: the retry owns the outcome now.
            self._end_trial_run(self._trial_run_id, "INTERRUPTED", {
                "interrupted": "true", "error": "declared lost by another worker (no heartbeat); retried"})
            self._trial_line(trial.number, "LOST", "another worker declared it lost; its retry decides")

    def _run_trial(self, trial) -> None:
        import optuna
        from optuna.trial import TrialState

        tracker, spec = self.tracker, self.spec
        run_id = None
        if tracker is not None:
            tags = run_tags(self.method_cls, self.task, spec.seed, self.device, spec.preset, role="trial")
            tags.update({"study": self.study_name, "trial": trial.number, "state": "RUNNING",
                         "worker": f"{socket.gethostname()}:{os.getpid()}"})
            retry_of = self.study._storage.get_trial(trial._trial_id).system_attrs.get("failed_trial")
            if retry_of is not None:
                tags["retry_of"] = retry_of
            run_id = tracker.start_run(self.experiment_id, f"trial-{trial.number}", tags, parent_run_id=self.parent_run_id)
            self._trial_run_id = run_id
            trial.set_user_attr(ATTR_RUN, run_id)

        reports = 0
        best_at = (-1.0, 0)

        def log_curve(epoch: int, metrics: Mapping[str, float]) -> None:
            if tracker is not None:
                tracker.log_metrics(run_id, metrics, step=epoch)

        def prune(epoch: int, metrics: Mapping[str, float]) -> None:
            nonlocal reports, best_at
            if OBJECTIVE not in metrics:
                return
            value = metrics[OBJECTIVE]
            trial.report(value, step=reports)
            reports += 1
            if value > best_at[0]:
                best_at = (value, reports)
            if trial.should_prune():
                raise optuna.TrialPruned(f"{OBJECTIVE} {value:.4f} at epoch {epoch} is below the median")

        t0 = time.perf_counter()
        params: dict[str, Any] = {}
        with _Heartbeat(self.storage, trial._trial_id):
            try:
                drawn = self.method_cls.search_space(FixedParamsTrial(trial, spec.fixed))
                method = self.method_cls(preset=spec.preset, **{**drawn, **spec.fixed})
                params = dict(method.params)
                trial.set_user_attr(ATTR_PARAMS, json.loads(json.dumps(params, default=str)))
                if tracker is not None:
                    tracker.log_params(run_id, {**params, "preset": spec.preset or "default", "seed": spec.seed})
                result, _ = fit_and_evaluate(method, self.task, spec.seed, self.device, hooks=[log_curve, prune],
                                             progress=spec.progress and self.worker is None, splits=("valid",))
                value = float(result.valid["micro_f1"])
            except optuna.TrialPruned as exc:
                self.study.tell(trial, state=TrialState.PRUNED)
                self._end_trial_run(run_id, "PRUNED", {"pruned": str(exc)})
                self._trial_line(trial.number, "PRUNED", f"{exc} ({_short(params)})")
                return
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                trial.set_user_attr(ATTR_ERROR, message[:2000])
                self.study.tell(trial, state=TrialState.FAIL)
                if tracker is not None:
                    tracker.log_json(run_id, "error.json", {"traceback": traceback.format_exc()})
                self._end_trial_run(run_id, "FAIL", {"error": message})
                self._trial_line(trial.number, "FAIL", f"{message} ({_short(params)})")
                log.info("trial %d failed", trial.number, exc_info=True)
                return
            except BaseException:
                # Ctrl-C (or SystemExit): no outcome. Mark it and queue it again, then stop.
                previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
                try:
                    self.study.tell(trial, state=TrialState.FAIL)
                    retry_interrupted(self.study, self.study._storage.get_trial(trial._trial_id))
                    self._end_trial_run(run_id, "INTERRUPTED", {
                        "interrupted": "true", "error": "interrupted: the worker was stopped (Ctrl-C)"})
                finally:
                    if previous is not None:
                        signal.signal(signal.SIGINT, previous)
                raise
        if best_at[1]:
            trial.set_user_attr(ATTR_BEST_EPOCHS, best_at[1])
        self.study.tell(trial, value)
        if tracker is not None:
            tracker.log_metrics(run_id, {f"final_valid_{k}": v for k, v in result.valid.items()})
            tracker.log_metrics(run_id, {"fit_seconds": result.fit_seconds})
        self._end_trial_run(run_id, "COMPLETE", {})
        self._trial_line(trial.number, "COMPLETE",
                         f"valid micro-F1 {value:.4f} in {time.perf_counter() - t0:.1f} s ({_short(params)})")

    def _end_trial_run(self, run_id: str | None, state: str, tags: Mapping[str, Any]) -> None:
        if self.tracker is None or run_id is None:
            return
        self.tracker.set_tags(run_id, {"state": "FAIL" if state == "INTERRUPTED" else state, **tags})
        self.tracker.end_run(run_id, MLFLOW_STATUS[state])

    # ---- the end

    def finalize(self) -> RunResult:
        """Evaluate the best configuration on test and log it to the parent run (once per best trial)."""
        from optuna.trial import TrialState

        self.study = _reload(self.study)
        self.reconcile_mlflow()
        c = self.counts()
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        tracker, spec = self.tracker, self.spec
        if not complete:
            message = f"no trial of study {self.study_name!r} completed ({c.describe()}); nothing to evaluate on test"
            if tracker is not None and self.parent_run_id is not None:
                tracker.set_tags(self.parent_run_id, {"error": message})
                tracker.end_run(self.parent_run_id, "FAILED")
            raise MlbenchError(message)
        best = self.study.best_trial
        key = f"trial {best.number}" + (", refit on train+valid" if spec.refit else "")
        summary_tags = {
            "best_trial": best.number,
            "trials_complete": c.complete,
            "trials_pruned": c.pruned,
            "trials_failed": c.failed,
            "trials_interrupted": c.interrupted,
        }
        if tracker is not None and self.parent_run_id is not None:
            run = tracker.get_run(self.parent_run_id)
            if run is not None and run.data.tags.get("mlbench.final") == key and "test_micro_f1" in run.data.metrics:
                tracker.set_tags(self.parent_run_id, summary_tags)
                tracker.end_run(self.parent_run_id)
                return self._result_from_run(run, best)

        params = dict(best.user_attrs.get(ATTR_PARAMS) or {**best.params, **spec.fixed})
        train: Split | None = None
        if spec.refit:
            train = merge_splits(self.task.train, self.task.valid)
            epochs = best.user_attrs.get(ATTR_BEST_EPOCHS)
            if "epochs" in params and epochs:
                params["epochs"] = int(epochs)  # no held-out data left to stop on: train as long as the best trial did
        method = self.method_cls(preset=spec.preset, **params)
        hooks = []
        if tracker is not None and self.parent_run_id is not None:
            run_id = self.parent_run_id
            hooks.append(lambda epoch, metrics: tracker.log_metrics(run_id, metrics, step=epoch))
        print(f"evaluating the best configuration (trial {best.number}, valid micro-F1 {best.value:.4f}) on test"
              + (" after refitting on train+valid" if spec.refit else ""), file=sys.stderr, flush=True)
        splits = ("test",) if spec.refit else ("valid", "test")
        try:
            result, outputs = fit_and_evaluate(method, self.task, spec.seed, self.device, hooks=hooks,
                                               progress=spec.progress, splits=splits, train=train)
        except BaseException as exc:
            if tracker is not None and self.parent_run_id is not None:
                tracker.set_tags(self.parent_run_id, {"error": f"final evaluation: {type(exc).__name__}: {exc}"})
                tracker.end_run(self.parent_run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        result.params = dict(method.params)
        result.run_id = self.parent_run_id
        if tracker is not None and self.parent_run_id is not None:
            rid = self.parent_run_id
            tracker.set_tags(rid, {**{f"best.{k}": v for k, v in method.params.items()}, **summary_tags})
            tracker.log_json(rid, "best_params.json", {"trial": best.number, "params": method.params,
                                                        "valid_micro_f1": best.value, "refit": spec.refit})
            metrics = {"best_valid_micro_f1": float(best.value), "fit_seconds": result.fit_seconds,
                       "predict_seconds": result.predict_seconds}
            metrics.update({f"test_{k}": v for k, v in result.test.items()})
            metrics.update({f"final_valid_{k}": v for k, v in result.valid.items()})
            tracker.log_metrics(rid, metrics)
            if spec.log_predictions:
                pred, sc = outputs["test"]
                tracker.log_predictions(rid, "test", self.task.test.ids, pred, sc)
            tracker.set_tags(rid, {"final": key, "refit": str(spec.refit).lower()})
            tracker.end_run(rid)
        return result

    def _result_from_run(self, run: Any, best: Any) -> RunResult:
        m = run.data.metrics
        return RunResult(
            method=self.method_cls.name,
            task=self.task.name,
            seed=self.spec.seed,
            params=dict(best.user_attrs.get(ATTR_PARAMS) or best.params),
            test={k[5:]: v for k, v in m.items() if k.startswith("test_")},
            valid={k[12:]: v for k, v in m.items() if k.startswith("final_valid_")},
            fit_seconds=m.get("fit_seconds", float("nan")),
            predict_seconds=m.get("predict_seconds", float("nan")),
            run_id=run.info.run_id,
        )

    def mark_parent(self, status: str, error: str | None = None) -> None:
        if self.tracker is None or self.parent_run_id is None:
            return
        if error:
            self.tracker.set_tags(self.parent_run_id, {"error": error})
        self.tracker.end_run(self.parent_run_id, status)


def trial_state_name(t) -> str:
    """COMPLETE, PRUNED, FAIL (with an error) or INTERRUPTED (failed without an outcome)."""
    from optuna.trial import TrialState

    if t.state == TrialState.FAIL and ATTR_ERROR not in t.user_attrs:
        return "INTERRUPTED"
    return t.state.name


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


def _reload(study):
    import optuna

    return optuna.load_study(study_name=study.study_name, storage=study._storage,
                             sampler=study.sampler, pruner=study.pruner)


def _bar(desc: str, total: int, enabled: bool):
    from tqdm.auto import tqdm

    from mlbench.progress import progress_enabled

    return tqdm(total=total, desc=desc, disable=not progress_enabled(enabled), file=sys.stderr, leave=False,
                dynamic_ncols=True)


def _short(params: Mapping[str, Any], limit: int = 160) -> str:
    text = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# ------------------------------------------------------------------ entry points


def _make_tracker(spec: TuneSpec):
    if spec.tracking_uri is None:
        return None
    from mlbench.tracking import Tracker

    return Tracker(spec.tracking_uri, artifact_dir=spec.artifact_dir)


def _worker_main(spec: TuneSpec, index: int, gpu: str | None) -> None:
    """A spawned worker: load what the parent had loaded, join the study, run trials."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before anything imports torch
    os.environ["MLBENCH_NO_PROGRESS"] = "1"
    from mlbench.registry import get_method, get_task, load_plugin_file

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    tuner = None
    try:
        for path in spec.plugins:
            load_plugin_file(path)
        method_cls = get_method(spec.method)
        task = get_task(spec.task, data_dir=Path(spec.data_dir) if spec.data_dir else None)
        tuner = Tuner(spec, method_cls, task, _make_tracker(spec), worker=index)
        tuner.attach_parent_run()
        tuner.recover()
        tuner.run_trials(progress=False)
    except KeyboardInterrupt:
        if tuner is not None:
            tuner.abandon_own_trials()
        sys.exit(130)
    except MlbenchError as exc:
        print(f"mlbench worker {index}: error: {exc}", file=sys.stderr)
        sys.exit(1)


def visible_gpus(method_cls: type[Method], device: str) -> list[str]:
    """GPU ids to hand out one per worker (empty: leave CUDA_VISIBLE_DEVICES alone)."""
    if not device.startswith("cuda") or ":" in device:
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _run_workers(tuner: Tuner, n_jobs: int) -> None:
    """K spawned processes on the shared storage (one GPU each when several are visible); wait for them."""
    spec = tuner.spec
    gpus = visible_gpus(tuner.method_cls, tuner.device)
    if len(gpus) < 2:
        gpus = []
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for i in range(n_jobs):
        gpu = gpus[i % len(gpus)] if gpus else None
        p = ctx.Process(target=_worker_main, args=(spec, i, gpu), name=f"mlbench-worker-{i}")
        p.start()
        procs.append(p)
    bar = _bar(f"tuning {tuner.method_cls.name} seed {spec.seed} ({n_jobs} workers)", spec.trials, spec.progress)
    bar.update(min(count_trials(tuner.study).finished, spec.trials))
    try:
        while any(p.is_alive() for p in procs):
            done = min(count_trials(tuner.study).finished, spec.trials)
            if done != bar.n:
                bar.update(done - bar.n)
            for p in procs:
                p.join(timeout=0.5 / n_jobs)
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reached the workers too; give them time to mark their trials, then insist.
        _stop_workers(procs)
        raise
    finally:
        bar.close()
    failed = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode not in (0, None)]
    for i, code in failed:
        what = "was interrupted" if code == 130 else f"exited with status {code}"
        print(f"mlbench: worker {i} {what}", file=sys.stderr)
    if len(failed) == len(procs):
        if all(code == 130 for _, code in failed):
            raise KeyboardInterrupt
        raise MlbenchError(f"all {len(procs)} workers failed (their messages are above)")


def _stop_workers(procs: Sequence[Any]) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(p.is_alive() for p in procs):
        time.sleep(0.1)
    for p in procs:
        if p.is_alive():
            os.kill(p.pid, signal.SIGINT)
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.terminate()
            p.join()


def tune(spec: TuneSpec, method_cls: type[Method], task: Task, tracker: Any | None) -> RunResult:
    """Run (or resume) the study of one seed, then evaluate its best configuration on test."""
    tuner = Tuner(spec, method_cls, task, tracker)
    tuner.attach_parent_run()
    tuner.recover()
    c = tuner.counts()
    verb = "created" if tuner.created else "opened"
    todo = max(spec.trials - c.finished - c.running, 0)
    print(
        f"study {tuner.study_name} {verb} in {redact(spec.storage)}: {c.finished} of {spec.trials} trials done"
        + (f" ({c.describe()})" if c.finished or c.interrupted or c.running else "")
        + (f"; running {todo} more" if todo else "")
        + (f" with {spec.n_jobs} workers" if todo and spec.n_jobs > 1 else ""),
        file=sys.stderr, flush=True,
    )
    try:
        # A second pass picks up configurations queued again while the first ran
        # (a worker elsewhere was interrupted): the count is over the whole study.
        for _ in range(3):
            if spec.n_jobs > 1:
                _run_workers(tuner, spec.n_jobs)
            else:
                tuner.run_trials(progress=spec.progress)
            c = tuner.counts()
            if c.finished + c.running >= spec.trials or spec.timeout is not None:
                break
    except KeyboardInterrupt:
        tuner.abandon_own_trials()
        tuner.study = _reload(tuner.study)
        tuner.reconcile_mlflow()
        c = tuner.counts()
        tuner.mark_parent("KILLED", f"interrupted after {c.finished} of {spec.trials} trials; "
                                    f"rerun the same command to resume")
        print(f"mlbench: tuning interrupted: {c.finished} of {spec.trials} trials kept in {redact(spec.storage)}; "
              f"rerun the same command to resume", file=sys.stderr)
        raise
    c = tuner.counts()
    timed_out = spec.timeout is not None and c.finished < spec.trials
    if c.running or (c.finished < spec.trials and not timed_out):
        raise StudyPending(
            f"study {tuner.study_name}: {c.finished} of {spec.trials} trials done, {c.running} still running in "
            f"other processes; the process that ends the last trial evaluates the best configuration on test "
            f"(or rerun this command once they are done)"
        )
    return tuner.finalize()


class StudyPending(MlbenchError):
    """This process is done but the study is not: other workers still hold trials."""
