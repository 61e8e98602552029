"""``tune``: one seed's study from start to finish in this process. It opens the study and its MLflow parent
run, recovers trials lost by dead processes, prints where the study stands, runs the missing trials (here or
in ``--n-jobs`` workers), and evaluates the best configuration on test once the study is complete; on Ctrl-C
it marks its own trials interrupted and the parent run KILLED, so that the same command resumes.
"""

from __future__ import annotations

import sys
from typing import Any

from mlbench.api import Method, Task
from mlbench.runs.runner import RunResult
from mlbench.runs.tuning.config import StudyPending, TuneSpec
from mlbench.runs.tuning.evaluation import finalize
from mlbench.runs.tuning.study import redact, reload_study
from mlbench.runs.tuning.tuner import Tuner
from mlbench.runs.tuning.workers import _run_workers


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
        tuner.study = reload_study(tuner.study)
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
    return finalize(tuner)
