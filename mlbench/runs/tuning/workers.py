"""Worker processes: with ``--n-jobs K`` the study loop runs in K spawned processes on the shared storage,
one GPU each when several are visible (``CUDA_VISIBLE_DEVICES`` set before torch is imported). The parent
process shows the study's progress, forwards a Ctrl-C (then insists), and reports each worker's exit; a
worker reloads the method, the task and the plugins by name, because a spawned process shares nothing.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from mlbench.api import Method, MlbenchError
from mlbench.runs.redaction import install_log_redaction, redact
from mlbench.runs.tuning.config import TuneSpec
from mlbench.runs.tuning.recovery import count_trials
from mlbench.runs.tuning.tuner import Tuner, _bar


def _make_tracker(spec: TuneSpec):
    if spec.tracking_uri is None:
        return None
    from mlbench.runs.tracking import Tracker

    return Tracker(spec.tracking_uri, artifact_dir=spec.artifact_dir)


def _worker_main(spec: TuneSpec, index: int, gpu: str | None) -> None:
    """A spawned worker: load what the parent had loaded, join the study, run trials."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before anything imports torch
    os.environ["MLBENCH_NO_PROGRESS"] = "1"
    from mlbench.data.tasks import get_task
    from mlbench.registry import get_method, load_plugin_file

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    install_log_redaction()
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
        print(f"mlbench worker {index}: error: {redact(str(exc))}", file=sys.stderr)
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
