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
from typing import Any, Mapping

from mlbench.api import MlbenchError, Task
from mlbench.runs.redaction import redact
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
        engine_kwargs["connect_args"] = {"timeout": config.SQLITE_TIMEOUT_S}
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
                    heartbeat_interval=config.HEARTBEAT_INTERVAL_S,
                    grace_period=config.GRACE_PERIOD_S,
                    **stale_callback,
                )
        except ImportError as exc:
            raise MlbenchError(f"storage {redact(url)}: missing database driver ({exc}); "
                               f"for PostgreSQL: pip install 'mlbench-harness[distributed]'") from exc
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


def reload_study(study):
    """The study read afresh from its storage (trials other processes added since)."""
    import optuna

    return optuna.load_study(study_name=study.study_name, storage=study._storage,
                             sampler=study.sampler, pruner=study.pruner)

