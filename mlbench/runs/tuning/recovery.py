"""Lost trials and what counts: a trial whose process died has no outcome, so it is marked interrupted
(FAIL without ``mlbench.error``), does not count toward ``--trials``, and its configuration is queued again
once. This module owns the owner record written into each trial (host, pid namespace, pid, start time), the
check that such a process is gone, the trial counts (``Counts``), the detection of stale trials (Optuna's
``fail_stale_trials`` for heartbeats, plus the owner check on this machine), and the MLflow reconciliation
that gives every trial run left RUNNING its trial's final status.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping

from mlbench.runs.tuning import config
from mlbench.runs.tuning.config import ATTR_ERROR, ATTR_OWNER, MLFLOW_STATUS

log = logging.getLogger("mlbench.runs.tuning")


def retry_interrupted(study, trial) -> None:
    """Queue an interrupted trial's configuration again (at most MAX_RETRIES times).

    Like Optuna's ``RetryFailedTrialCallback`` (same ``failed_trial``/``retry_history`` system attributes,
    same ``study.add_trial`` of a WAITING copy), but kept because Optuna's copies the user attributes, whose
    owner record names the dead process: a worker that checked owners between the retry's claim and its new
    owner record would interrupt the retry at once. (``enqueue_trial`` cannot carry the system attributes.)
    """
    import optuna

    history = list(trial.system_attrs.get("retry_history", [])) + [trial.number]
    if len(history) > config.MAX_RETRIES:
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


def has_outcome(t) -> bool:
    from optuna.trial import TrialState

    return t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        t.state == TrialState.FAIL and ATTR_ERROR in t.user_attrs
    )


def occupies_slot(t) -> bool:
    from optuna.trial import TrialState

    return has_outcome(t) or t.state == TrialState.RUNNING


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


def trial_state_name(t) -> str:
    """COMPLETE, PRUNED, FAIL (with an error) or INTERRUPTED (failed without an outcome)."""
    from optuna.trial import TrialState

    if t.state == TrialState.FAIL and ATTR_ERROR not in t.user_attrs:
        return "INTERRUPTED"
    return t.state.name



#: errno values of a file system that cannot take writes: the store's fault, not the method's.
_FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO}


def store_fault(exc: BaseException) -> str | None:
    """Which store an exception raised during a trial comes from ("tracking store", "Optuna storage",
    "file system"), or None when it is the method's own (a failed trial)."""
    import optuna

    from mlbench.runs.store import TrackingStoreError

    if isinstance(exc, TrackingStoreError):
        return "tracking store"
    if isinstance(exc, optuna.exceptions.StorageInternalError):
        return "Optuna storage"
    try:
        import sqlalchemy.exc

        if isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
            return "Optuna storage"  # the method gets no database of ours; the study's storage does
    except ImportError:  # pragma: no cover - Optuna's RDB storage needs it
        pass
    if isinstance(exc, OSError) and exc.errno in _FULL_OR_READ_ONLY:
        return "file system"
    return None


def fail_stale(study, study_name: str) -> None:
    """Interrupt the running trials whose process is gone: Optuna's heartbeat (RDB storages), and on
    this machine the process recorded in the trial."""
    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # calls retry_interrupted
    now = datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get(ATTR_OWNER)
        if owner is not None:
            stale = owner_is_gone(owner)
        else:
            stale = t.datetime_start is not None and now - t.datetime_start > timedelta(seconds=config.UNOWNED_GRACE_S)
        if stale and interrupt_trial(study, t):
            log.warning("trial %d of study %s was left running by a process that is gone: "
                        "marked interrupted, configuration queued again", t.number, study_name)


def abandon_own_trials(study) -> None:
    """After Ctrl-C: trials this process still holds are interrupted (and queued again)."""
    from optuna.trial import TrialState

    me = owner_record()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get(ATTR_OWNER) or {}
        if owner.get("host") == me["host"] and owner.get("pid") == me["pid"]:
            interrupt_trial(study, t)


def interrupt_trial(study, t) -> bool:
    """RUNNING -> FAIL (no error: interrupted) and queue the configuration again; False if another got there first."""
    import optuna
    from optuna.trial import TrialState

    try:
        changed = study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    if changed:
        retry_interrupted(study, t)
    return bool(changed)


def reconcile_mlflow(study, tracker: Any, experiment_id: str | None, parent_run_id: str | None) -> None:
    """Give every RUNNING trial run whose Optuna trial has ended the status of that trial."""
    if tracker is None or parent_run_id is None:
        return
    from optuna.trial import TrialState

    runs = tracker.find_runs(experiment_id, {"mlflow.parentRunId": parent_run_id, "role": "trial"})
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
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
            tracker.log_metrics(run.info.run_id, {"final_valid_micro_f1": t.value})
        tracker.set_tags(run.info.run_id, tags)
        tracker.end_run(run.info.run_id, MLFLOW_STATUS[state])
