"""The study loop of one process: ``Tuner`` opens (or creates) the study and checks it was made for the same
settings, finds or creates the study's MLflow parent run, claims trial slots until the study has its N, and
runs each trial as a nested MLflow run (its parameters, per-epoch validation curve, pruning and final state).
A trial ends COMPLETE, PRUNED, FAIL (the method raised: an outcome) or interrupted (Ctrl-C, or declared lost
by another worker: no outcome, queued again). The test evaluation of the best trial lives in ``evaluation``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from typing import Any, Mapping

from mlbench.api import Method, MlbenchError, Task
from mlbench.runs.runner import fit_and_evaluate, resolve_device, run_tags
from mlbench.runs.tuning import config
from mlbench.runs.tuning.claims import Heartbeat, claim_lock
from mlbench.runs.tuning.config import (ATTR_BEST_EPOCHS, ATTR_ERROR, ATTR_OWNER, ATTR_PARAMS, ATTR_RUN, ATTR_SURPLUS,
                                   MLFLOW_STATUS, OBJECTIVE, STUDY_CONFIG, STUDY_PARENT, STUDY_UID, StoreFault,
                                   TuneSpec)
from mlbench.runs.tuning.recovery import (Counts, abandon_own_trials, count_trials, fail_stale, occupies_slot,
                                     owner_record, reconcile_mlflow, retry_interrupted, store_fault)
from mlbench.runs.tuning.study import (FixedParamsTrial, default_study_name, make_pruner, make_sampler, open_storage,
                                  redact, reload_study)

log = logging.getLogger("mlbench.runs.tuning")


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
            try:
                study = optuna.create_study(study_name=self.study_name, direction="maximize", **kwargs)
                study.set_user_attr(STUDY_CONFIG, config)
                study.set_user_attr(STUDY_UID, f"{random.getrandbits(64):016x}")
                return study, True
            except optuna.exceptions.DuplicatedStudyError:
                study = optuna.load_study(study_name=self.study_name, **kwargs)
        except MlbenchError:
            raise
        except Exception as exc:  # a storage that cannot hold the study (a damaged journal: Optuna asserts)
            detail = (str(exc).strip().splitlines() or [""])[0][:200]
            raise MlbenchError(f"cannot open study {self.study_name!r} in {redact(self.spec.storage)}: "
                               f"{type(exc).__name__}: {redact(detail)}" + ("" if "://" in self.spec.storage else
                               "; the journal file may be damaged: move it aside or pick another --storage")) from exc
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
        deadline = time.monotonic() + (0 if self.created else config.PARENT_WAIT_S)
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
            self.study = reload_study(self.study)
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
        fail_stale(self.study, self.study_name)

    def abandon_own_trials(self) -> None:
        abandon_own_trials(self.study)

    def reconcile_mlflow(self) -> None:
        reconcile_mlflow(self.study, self.tracker, self.experiment_id, self.parent_run_id)

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
                # our loop runs Optuna's heartbeat itself (claims.Heartbeat), as Study.optimize does
                warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
                trial = self.study.ask()
            trial.set_user_attr(ATTR_OWNER, owner_record())
        # Without a lock (other databases) two workers may both have passed the check:
        # the trial's slot is its rank among the trials that count; beyond N it gives way.
        earlier = [t for t in self.study.get_trials(deepcopy=False)
                   if t.number < trial.number and occupies_slot(t)]
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
            try:
                run_id = tracker.start_run(self.experiment_id, f"trial-{trial.number}", tags,
                                           parent_run_id=self.parent_run_id)
            except Exception as exc:  # a store that fails as the trial starts: interrupted, as during the fit
                store = store_fault(exc)
                if store is None:
                    raise
                raise self._store_fault(trial, None, store, exc) from exc
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
        with Heartbeat(self.storage, trial._trial_id):
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
                store = store_fault(exc)
                if store is not None:
                    raise self._store_fault(trial, run_id, store, exc) from exc
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

    def _store_fault(self, trial, run_id: str | None, store: str, exc: BaseException) -> StoreFault:
        """A store failed during the trial: the trial is interrupted (queued again, not counted), the run stops."""
        from optuna.trial import TrialState

        try:
            self.study.tell(trial, state=TrialState.FAIL)
            retry_interrupted(self.study, self.study._storage.get_trial(trial._trial_id))
        except Exception:  # the Optuna storage is down too: the next run finds the trial's process gone
            log.info("could not mark trial %d interrupted", trial.number, exc_info=True)
        if store != "tracking store":
            with contextlib.suppress(Exception):
                self._end_trial_run(run_id, "INTERRUPTED", {"interrupted": "true", "error": f"interrupted: {store} failed"})
        self._trial_line(trial.number, "STOPPED", f"the {store} failed; the trial runs again on resume")
        if store == "tracking store":
            detail = str(exc)
        else:
            where = f"{store} {redact(self.spec.storage)}" if store == "Optuna storage" else store
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            detail = (f"{where}: {type(exc).__name__}: {first}; check that it is reachable and writable, then rerun "
                      f"the same command (finished trials are kept)")
        return StoreFault(f"trial {trial.number} interrupted (it runs again on resume): {detail}")

    def _end_trial_run(self, run_id: str | None, state: str, tags: Mapping[str, Any]) -> None:
        if self.tracker is None or run_id is None:
            return
        self.tracker.set_tags(run_id, {"state": "FAIL" if state == "INTERRUPTED" else state, **tags})
        self.tracker.end_run(run_id, MLFLOW_STATUS[state])

    # ---- the end

    def mark_parent(self, status: str, error: str | None = None) -> None:
        if self.tracker is None or self.parent_run_id is None:
            return
        if error:
            self.tracker.set_tags(self.parent_run_id, {"error": error})
        self.tracker.end_run(self.parent_run_id, status)


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
