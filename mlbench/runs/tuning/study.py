"""Opening a study's pieces: its default name, its storage (SQLite, PostgreSQL, a journal file), the
per-trial seeded TPE sampler, the median pruner, and the trial wrapper that keeps ``--param`` values fixed.
RDB storages get Optuna's own heartbeat (``heartbeat_interval``/``grace_period``) with
``recovery.retry_interrupted`` as the stale-trial callback, so a trial whose worker died on another machine is
found by Optuna and its configuration queued again. Nothing here runs trials or touches MLflow.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

from mlbench.api import MlbenchError, Task
from mlbench.runs.redaction import redact, remember
from mlbench.runs.tuning import config
from mlbench.runs.tuning.recovery import retry_interrupted


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


def check_storage(url: str) -> None:
    """What ``--storage`` names, checked without opening it: not a folder or another special file (a usage
    error), and an existing SQLite file must be one. Runs before any data is read."""
    from mlbench.api import UsageError
    from mlbench.runs.store import check_sqlite_file

    if "://" in url:
        check_sqlite_file(url, "--storage")
        return
    path = Path(url)
    if path.is_dir():
        raise UsageError(f"--storage {url}: is a folder; give a journal file path (or an RDB URL)")
    if path.exists() and not path.is_file():
        raise UsageError(f"--storage {url}: is not a regular file; give a journal file path (or an RDB URL)")
    if not path.parent.is_dir():
        raise UsageError(f"--storage {url}: its folder {path.parent} does not exist")
    if path.is_file():
        _check_journal_lines(path)


def _check_journal_lines(path: Path) -> None:
    """Every finished line of a journal file is a JSON object, as Optuna reads it (a last line without its
    newline may be a record another process is writing right now: Optuna skips it, and so does this)."""
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, 1):
                if not line.endswith(b"\n"):
                    break
                try:
                    record = json.loads(line)
                except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                    raise MlbenchError(f"Optuna journal {path}: line {number} is not a journal record ({exc}); "
                                       "the file is damaged or not a journal: move it aside or pick another "
                                       "--storage") from exc
                if not isinstance(record, dict):
                    raise MlbenchError(f"Optuna journal {path}: line {number} is not a journal record; the file "
                                       "is damaged or not a journal: move it aside or pick another --storage")
    except OSError as exc:
        raise MlbenchError(f"Optuna journal {path} cannot be read ({exc.strerror})") from exc


def open_journal(path: str):
    """Optuna's journal storage on a file; a file Optuna cannot replay is one line naming it."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    check_storage(path)
    try:
        return JournalStorage(JournalFileBackend(str(path)))
    except Exception as exc:  # JSON errors, Optuna's own asserts, OS errors: the file is not a journal it reads
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise MlbenchError(f"Optuna journal {path} cannot be read ({type(exc).__name__}: {detail}); it is not an "
                           "Optuna journal file or it was damaged: move it aside or pick another --storage") from exc


def make_optuna_schema(temp_url: str) -> None:
    """Optuna's tables and version records in the SQLite file of ``temp_url``, its engine closed."""
    import optuna

    storage = optuna.storages.RDBStorage(temp_url)
    storage.remove_session()
    storage.engine.dispose()


def open_storage(url: str):
    """An Optuna storage for ``url``: an RDB URL (``sqlite:///``, ``postgresql://``...) or a journal file path.

    A fresh SQLite file is created whole (:func:`mlbench.runs.store.create_sqlite_atomically`, under the
    same lock as the tracking store's), so a Ctrl-C while Optuna makes its tables leaves no half-made file;
    a server that refuses the connection fails after one try.
    """
    import optuna

    from mlbench.runs.store import (SCHEMA_RACE, create_sqlite_atomically, creation_lock, probe_server_database,
                                    with_postgres_driver)

    remember(url)
    if "://" not in url:
        return open_journal(url)
    check_storage(url)
    url = with_postgres_driver(url)
    remember(url)
    probe_server_database(url, "--storage")
    stale_callback: dict[str, Any] = {_stale_callback_arg(): retry_interrupted}
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # several worker processes write the same file: wait for the lock rather than fail
        engine_kwargs["connect_args"] = {"timeout": config.SQLITE_TIMEOUT_S}
        try:
            with creation_lock(url):
                create_sqlite_atomically(url, make_optuna_schema)
        except Exception as exc:  # the file system or Optuna's schema: one line naming the storage
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else first
            raise MlbenchError(f"cannot create Optuna storage {redact(url)}: {redact(detail)[:300]}") from exc
    else:
        engine_kwargs["pool_pre_ping"] = True
    # Two workers opening a fresh server database both create the schema; the loser retries.
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=config.HEARTBEAT_INTERVAL_S,
                    grace_period=config.GRACE_PERIOD_S,
                    **stale_callback,
                )
        except ImportError as exc:
            raise MlbenchError(f"storage {redact(url)}: missing database driver ({exc}); "
                               f"for PostgreSQL: pip install 'mlbench-harness[distributed]'") from exc
        except Exception as exc:
            racing = any(text in str(exc).lower() for text in SCHEMA_RACE)
            if attempt == 4 or not racing:
                detail = (str(exc).strip().splitlines() or [""])[0][:300]
                raise MlbenchError(f"cannot open Optuna storage {redact(url)}: {type(exc).__name__}: "
                                   f"{redact(detail)}") from exc
            time.sleep(0.5 + random.random() * 2)
    raise AssertionError("unreachable")


def reload_study(study):
    """The study read afresh from its storage (trials other processes added since)."""
    import optuna

    return optuna.load_study(study_name=study.study_name, storage=study._storage,
                             sampler=study.sampler, pruner=study.pruner)

