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

Modules, in import order (each imports only those above it):

* ``config``: tunable timings, attribute names, ``TuneSpec``, ``StudyPending``;
* ``recovery``: owner records, trial counts, lost-trial detection and retries, MLflow reconciliation;
* ``study``: study naming, storage opening, the seeded sampler, the pruner;
* ``claims``: the claim lock and the trial heartbeat;
* ``evaluation``: the test evaluation of the best trial;
* ``tuner``: ``Tuner``, the study loop and its MLflow runs;
* ``workers``: ``--n-jobs`` worker processes and their GPUs;
* ``driver``: ``tune``, one seed's study from start to finish.

The names below are re-exported so that ``from mlbench.tuning import ...`` keeps working. Setting a tunable
timing on this package (``mlbench.tuning.GRACE_PERIOD_S = 2``) sets it in ``config``, where the code reads it.
"""

from __future__ import annotations

import sys
import types

from mlbench.tuning import config
from mlbench.tuning.config import (ATTR_BEST_EPOCHS, ATTR_ERROR, ATTR_OWNER, ATTR_PARAMS, ATTR_RUN, ATTR_SURPLUS,
                                   DEFAULT_STORAGE, GRACE_PERIOD_S, HEARTBEAT_INTERVAL_S, MAX_RETRIES,
                                   MLFLOW_STATUS, OBJECTIVE, PARENT_WAIT_S, SQLITE_TIMEOUT_S, STUDY_CONFIG,
                                   STUDY_PARENT, STUDY_UID, UNOWNED_GRACE_S, StoreFault, StudyPending,
                                   TuneSpec)
from mlbench.tuning.recovery import (Counts, abandon_own_trials, count_trials, fail_stale, has_outcome,
                                     interrupt_trial, occupies_slot, owner_is_gone, owner_record,
                                     reconcile_mlflow, retry_interrupted, store_fault, trial_state_name)
from mlbench.tuning.study import (FixedParamsTrial, TrialSeededSampler, default_study_name, make_pruner,
                                  make_sampler, open_storage, redact, reload_study, with_postgres_driver)
from mlbench.tuning.claims import Heartbeat, claim_lock
from mlbench.tuning.evaluation import finalize, merge_splits
from mlbench.tuning.tuner import Tuner
from mlbench.tuning.workers import visible_gpus
from mlbench.tuning.driver import tune


__all__ = [
    "ATTR_BEST_EPOCHS",
    "ATTR_ERROR",
    "ATTR_OWNER",
    "ATTR_PARAMS",
    "ATTR_RUN",
    "ATTR_SURPLUS",
    "Counts",
    "DEFAULT_STORAGE",
    "FixedParamsTrial",
    "GRACE_PERIOD_S",
    "HEARTBEAT_INTERVAL_S",
    "Heartbeat",
    "MAX_RETRIES",
    "MLFLOW_STATUS",
    "OBJECTIVE",
    "PARENT_WAIT_S",
    "SQLITE_TIMEOUT_S",
    "STUDY_CONFIG",
    "STUDY_PARENT",
    "STUDY_UID",
    "StoreFault",
    "StudyPending",
    "TrialSeededSampler",
    "TuneSpec",
    "Tuner",
    "UNOWNED_GRACE_S",
    "abandon_own_trials",
    "claim_lock",
    "count_trials",
    "default_study_name",
    "fail_stale",
    "finalize",
    "has_outcome",
    "interrupt_trial",
    "make_pruner",
    "make_sampler",
    "merge_splits",
    "occupies_slot",
    "open_storage",
    "owner_is_gone",
    "owner_record",
    "reconcile_mlflow",
    "redact",
    "reload_study",
    "retry_interrupted",
    "store_fault",
    "trial_state_name",
    "tune",
    "visible_gpus",
    "with_postgres_driver",
]

class _TuningPackage(types.ModuleType):
    """Forwards writes of the tunable timings to ``config``, the one place the code reads them from."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in config.TUNABLES:
            setattr(config, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _TuningPackage
