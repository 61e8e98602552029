"""Settings and names shared by the tuning modules: the tunable timings, the attribute and tag names mlbench
writes into Optuna studies and trials, the ``TuneSpec`` that a worker process receives, and the
``StudyPending`` error. It imports nothing from the other tuning modules, so every one of them can import it;
the timings are read from here at call time (``config.GRACE_PERIOD_S``), so setting one on the
``mlbench.runs.tuning`` package changes what the code uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlbench.api import MlbenchError

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


class StudyPending(MlbenchError):
    """This process is done but the study is not: other workers still hold trials."""


class StoreFault(MlbenchError):
    """A store (tracking, Optuna storage, file system) failed during a trial: the trial is interrupted, not failed."""
