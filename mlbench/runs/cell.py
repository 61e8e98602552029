"""One cell of a suite's matrix: what it needs (:class:`PlannedCell`), and running it once in this process.

:func:`run_cell` claims the cell first (:mod:`mlbench.runs.cell_claims`), so no two workers, commands or
machines sharing a store run it twice; it waits for the cell whose model it starts from, runs it, records
it, and never raises for the cell's own failure, which is recorded with its error. It is what the command
runs cell after cell, and what each Dask task runs (:mod:`mlbench.runs.dask_pool`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlbench.api import MlbenchError
from mlbench.runs.suite import (
    CellOutcome,
    Suite,
    _referenced_model,
    cell_digest,
    find_cell_run,
    model_references,
    stored_cell,
)


@dataclass
class PlannedCell:
    """One cell of the matrix and what it needs: ``run`` (new or stale), or a final status already."""

    method: str
    task: str
    seed: int
    digest: str = ""
    fingerprint: str = ""
    status: str = "run"  # run, skipped (complete), incompatible, failed (could not be planned)
    detail: str = ""
    sources: dict[str, str] = field(default_factory=dict)  # parameter -> suite method whose model it starts from
    replaces: str = ""  # the stored run this cell supersedes (out of date, or other settings); "" for a new cell
    code: str = ""  # the method's code digest and the task's data code digest when it was planned
    dataset: str = ""  # the dataset the task is (a variant of): cells of one method on it share caches

    @property
    def name(self) -> str:
        return f"{self.method} on {self.task} seed {self.seed}"

    @property
    def claim_key(self) -> str:
        """The cell's identity in the claims table: its task split, method, seed, configuration and code, and
        the stored run it supersedes. Commands that plan the same store state claim the same key (one runs it,
        the others skip it); after a code change, or a rerun that supersedes another run, it is a new key, so a
        cell that failed on older code is tried again."""
        text = "\0".join([self.fingerprint, self.method, str(self.seed), self.digest, self.code, self.replaces])
        return hashlib.sha256(text.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Settings:
    """What a worker process needs to run cells of a suite (picklable: it travels to Dask workers)."""

    suite: Suite
    tracking_uri: str
    artifact_dir: str
    device: str = "auto"
    data_dir: str | None = None
    progress: bool = False
    claims: str | None = None
    retry_failed: bool = False
    log_dir: str | None = None
    threads: str | None = None  # $MLBENCH_TORCH_THREADS of the command, for its workers
    plugins: tuple[str, ...] = ()


_tasks: dict[str, Any] = {}  # a worker process keeps the tasks it loaded


def run_cell(settings: Settings, cell: PlannedCell, *_sources_done: Any) -> CellOutcome:
    """Claim and run one cell in this process (a Dask worker, or the command itself); never raises for a
    failure of the cell, which is recorded with its error. The extra arguments are the outcomes of the
    cells it starts from, passed by Dask so that it runs after them."""
    from mlbench.registry import get_method, load_plugin_file
    from mlbench.runs.cell_claims import ClaimBoard, Heartbeat, this_owner
    from mlbench.runs.runner import run_once
    from mlbench.runs.tracking import Tracker

    if settings.threads:
        os.environ["MLBENCH_TORCH_THREADS"] = settings.threads
    for path in settings.plugins:
        load_plugin_file(path)
    t0 = time.perf_counter()
    failed_sources = [o for o in _sources_done if isinstance(o, CellOutcome) and o.status == "failed"]
    if failed_sources:
        s = failed_sources[0]
        return CellOutcome(cell.method, cell.task, cell.seed, "failed", 0.0,
                           f"the {s.method} cell it starts from failed ({s.detail})")
    board = ClaimBoard(settings.claims) if settings.claims else None
    claim = None
    log = _log_path(settings, cell)
    try:
        owner = this_owner()
        if board is not None:
            def obsolete() -> bool:  # a finished claim whose run the store no longer holds as current
                task = _load_task(settings, cell.task)
                stored, changed = stored_cell(settings.suite, Tracker(settings.tracking_uri,
                                              artifact_dir=settings.artifact_dir), task, cell.method, cell.seed,
                                              cell.sources)
                return stored is None or bool(changed)

            claim = board.claim(cell.claim_key, cell.name, owner, retry_failed=settings.retry_failed,
                                obsolete_done=obsolete)
            if claim is None:
                row = board.row(cell.claim_key) or {}
                status = {"done": "skipped", "failed": "failed"}.get(row.get("status", ""), "elsewhere")
                return CellOutcome(cell.method, cell.task, cell.seed, status, 0.0,
                                   row.get("error") or f"claimed by {row.get('owner', '?')}")
        tracker = Tracker(settings.tracking_uri, artifact_dir=settings.artifact_dir)
        if claim is not None and claim.previous_owner:  # a lost attempt's run ends KILLED, never FINISHED
            end_lost_runs(tracker, cell.task, {claim.previous_owner})
        task = _load_task(settings, cell.task)
        suite = settings.suite
        method_cls = get_method(cell.method)
        providers = {target for keys in model_references(suite).values() for target in keys.values()}
        with contextlib.ExitStack() as stack:
            if board is not None and claim is not None:
                stack.enter_context(Heartbeat(board, claim))
            stream = stack.enter_context(open(log, "a")) if log else None
            if stream is not None:
                stack.enter_context(contextlib.redirect_stdout(stream))
                stack.enter_context(contextlib.redirect_stderr(stream))
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="mlbench-init-"))
            run_params, tags = dict(suite.methods[cell.method]), {}
            for key, target in cell.sources.items():
                _wait_for_source(suite, tracker, task, target, cell.seed)
                run_params[key], tags[f"{key}_run"] = _referenced_model(suite, tracker, task, target, cell.seed,
                                                                        Path(tmp) / key)
            if claim is not None:
                tags.update(claim_attempt=str(claim.attempt), claim_owner=claim.owner)
            result = run_once(method_cls, task, run_params, seed=cell.seed, device=_device(settings.device, method_cls),
                              tracker=tracker, preset=suite.preset, progress=settings.progress,
                              save_model=cell.method in providers, extra_tags=tags, suite=suite.name,
                              model_references=tuple(cell.sources), label=suite.labels.get(cell.method))
        tracker.set_tags(result.run_id, {"suite": suite.name})
        if log and os.path.getsize(log):
            tracker.log_artifact_file(result.run_id, log)
        if board is not None and claim is not None:
            board.started(claim, result.run_id or "")
            board.finish(claim, ok=True)
        secs = time.perf_counter() - t0
        return CellOutcome(cell.method, cell.task, cell.seed, "done", secs,
                           f"micro-F1 {result.test['micro_f1']:.4f}, 0/1 loss {result.test['subset_01_loss']:.4f}")
    except KeyboardInterrupt:
        if board is not None and claim is not None:
            board.release(claim)
        raise
    except Exception as exc:  # one broken cell must not sink the suite
        detail = f"{type(exc).__name__}: {exc}"
        if board is not None and claim is not None:
            board.finish(claim, ok=False, error=detail + "\n" + traceback.format_exc(limit=5))
        return CellOutcome(cell.method, cell.task, cell.seed, "failed", time.perf_counter() - t0, detail)


def _load_task(settings: Settings, name: str) -> Any:
    from mlbench.data.tasks import get_task

    if name not in _tasks:
        _tasks[name] = get_task(name, data_dir=Path(settings.data_dir) if settings.data_dir else None)
    return _tasks[name]


def end_lost_runs(tracker: Any, task: str, owners: set[str]) -> None:
    """End as KILLED the RUNNING runs that claimers in ``owners`` started and never finished."""
    experiment = tracker.experiment_id(task)
    for owner in owners:
        for run in tracker.find_runs(experiment, {"claim_owner": owner}):
            if run.info.status == "RUNNING":
                tracker.set_tags(run.info.run_id, {"interrupted": "its worker stopped before the cell finished"})
                tracker.end_run(run.info.run_id, "KILLED")


def said(o: CellOutcome) -> str:
    """How one finished cell is told in a progress line."""
    if o.status == "done":
        return f"{o.detail} ({o.seconds:.0f} s)"
    if o.status == "failed":
        return f"FAILED ({o.detail})"
    if o.status == "elsewhere":
        return f"running elsewhere ({o.detail}), not run here"
    return f"{o.status} ({o.detail})" if o.detail else o.status


def _device(requested: str, method_cls: type) -> str:
    """``auto`` on a Dask worker with GPUs: the worker's own GPU (workers are numbered 0..N-1)."""
    from mlbench.runs.runner import resolve_device

    device = resolve_device(requested, method_cls)
    if device != "cuda":
        return device
    try:
        import torch
        from distributed import get_worker

        index = int(get_worker().name)
        return f"cuda:{index % max(torch.cuda.device_count(), 1)}"
    except (ImportError, ValueError, TypeError):  # not on a numbered Dask worker
        return device


#: How long a cell waits for the cell it starts from to finish elsewhere (another command, another machine).
SOURCE_WAIT_S = 48 * 3600.0
SOURCE_POLL_S = 15.0


def _wait_for_source(suite: Suite, tracker: Any, task: Any, target: str, seed: int) -> None:
    """Block until the ``target`` cell of ``task`` and ``seed`` has a finished run (it may run anywhere)."""
    deadline = time.monotonic() + SOURCE_WAIT_S
    digest = cell_digest(suite, target)
    while find_cell_run(tracker, task.name, task.fingerprint, target, seed, digest) is None:
        if time.monotonic() > deadline:
            raise MlbenchError(f"the {target} cell of {task.name} seed {seed} did not finish within "
                               f"{SOURCE_WAIT_S / 3600:.0f} h")
        time.sleep(SOURCE_POLL_S)


def _log_path(settings: Settings, cell: PlannedCell) -> str | None:
    if not settings.log_dir:
        return None
    folder = Path(settings.log_dir) / settings.suite.name / cell.task.replace("/", "_").lstrip("._")
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{cell.method}-seed{cell.seed}.log")
