"""Running a suite's matrix: every incomplete cell once, in this process or on a Dask cluster.

:func:`plan_cells` decides, from the store, what each cell needs (complete, stale, new, or a method that
cannot read the task); :func:`run_suite` runs the cells that need it, one after another here, or with
``workers > 1`` (or a ``scheduler`` address) as Dask tasks, a seq2set cell depending on the seq2seq cell it
starts from. Dask was chosen over Ray and submitit by measurement (reports/performance/bench_engines.md, this
project's shared 2-core machine, medians of 3; an earlier run at load 0.1 in brackets): a two-worker local
cluster started in 1.88 s (0.49 s) and added 3.7 ms (2.3 ms) per task, where Ray took 8.33 s (2.96 s) to
start, 0.9 ms (0.8 ms) per task, its installation about 240 MB, and submitit's local executor, a process per
job, 567.9 ms (222.5 ms) per task. Dask needs no daemon of its own, and the same client reaches a SLURM/PBS cluster through
dask-jobqueue or any ``dask scheduler``/``dask worker`` set-up. On each worker the cells of one method on one
dataset go together, in suite order (:func:`mlbench.runs.dask_pool.placement`).

Whatever runs them, every cell is claimed first (:mod:`mlbench.runs.cell_claims`), so workers of one
command, or of several commands on several machines sharing the store, never run a cell twice; a worker
that dies mid-cell leaves a claim the next attempt takes over (Dask reschedules the task once), a failed
cell is recorded with its error and retried only with ``retry_failed``, and Ctrl-C cancels the tasks,
closes the workers and releases the claims of the cells that were running.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

from mlbench.api import MlbenchError, incompatibility
from mlbench.runs.cell import PlannedCell, Settings, run_cell, said
from mlbench.runs.suite import CellOutcome, Suite, cell_digest, changed_params, model_references, stored_cell

Echo = Callable[[str], None]


def plan_cells(suite: Suite, tracker: Any, data_dir: Path | None, echo: Echo, dry_run: bool = False) -> list[PlannedCell]:
    """What every cell of ``suite`` needs, decided from the store (the echo lines say why)."""
    from mlbench.data.tasks import get_task
    from mlbench.registry import get_method
    from mlbench.runs.identity import data_code_digest, method_code_digest

    refs = model_references(suite)
    cells = suite.cells()
    width = len(str(len(cells)))
    tasks: dict[str, Any] = {}
    digests: dict[str, str] = {}
    planned: set[tuple[str, str, int]] = set()
    out: list[PlannedCell] = []
    for i, (method_name, task_name, seed) in enumerate(cells, 1):
        cell = PlannedCell(method_name, task_name, seed, sources=dict(refs.get(method_name, {})))
        prefix = f"[{i:>{width}}/{len(cells)}] {cell.name}"
        out.append(cell)
        try:
            if task_name not in tasks:
                tasks[task_name] = get_task(task_name, data_dir=data_dir)
            task = tasks[task_name]
            method_cls = get_method(method_name)
            cell.fingerprint, cell.dataset = task.fingerprint, task.dataset
            reason = incompatibility(method_cls, task.inputs, task.name)
            if reason:
                cell.status, cell.detail = "incompatible", reason
                echo(f"{prefix}: skipped, {reason}")
                continue
            if method_name not in digests:
                digests[method_name] = cell_digest(suite, method_name)
            cell.digest = digests[method_name]
            cell.code = f"{method_code_digest(method_cls)}:{data_code_digest(task.dataset)}"
            stored, changed = stored_cell(suite, tracker, task, method_name, seed, cell.sources)
            if stored is not None:
                # a cell whose model source runs first is rerun after it, in a dry run too
                changed += [f"{key}: its {target} cell {'would run' if dry_run else 'runs'} first" for key, target in cell.sources.items()
                            if (target, task.name, seed) in planned]
                cell.replaces = stored.info.run_id
                if not changed:
                    cell.status = "skipped"
                    echo(f"{prefix}: already in the store, skipped")
                    continue
                echo(f"{prefix}: in the store, but out of date ({'; '.join(changed)}): "
                     + ("would rerun" if dry_run else "rerun"))
            else:
                params = suite.methods[method_name]
                earlier = tracker.finished_parent_runs(task.name, {"fingerprint": task.fingerprint, "suite": suite.name,
                                                                   "method": method_name, "seed": str(seed)})
                resolved = method_cls(preset=suite.preset, **{k: v for k, v in params.items()
                                                              if k not in cell.sources}).params
                changed = changed_params(resolved, earlier[0].data.params, method_cls.defaults,
                                         ignore=cell.sources) if earlier else []
                cell.replaces = earlier[0].info.run_id if changed else ""
                if changed:
                    echo(f"{prefix}: in the store with other settings ({'; '.join(changed)}): "
                         + ("would rerun" if dry_run else "rerun"))
                elif dry_run:
                    echo(f"{prefix}: would run")
            planned.add((method_name, task.name, seed))
        except Exception as exc:  # one broken cell must not sink the suite
            cell.status, cell.detail = "failed", f"{type(exc).__name__}: {exc}"
            echo(f"{prefix}: FAILED ({cell.detail})")
    return out


def run_suite(
    suite: Suite,
    tracker: Any,
    device: str = "auto",
    data_dir: Path | None = None,
    progress: bool = True,
    echo: Echo = lambda line: print(line, file=sys.stderr, flush=True),
    dry_run: bool = False,
    workers: int = 1,
    scheduler: str | None = None,
    claims: str | None = None,
    retry_failed: bool = False,
    log_dir: str | None = None,
    plugins: tuple[str, ...] = (),
) -> list[CellOutcome]:
    """Run every incomplete cell once; failures are reported and the suite goes on.

    A cell is complete when the store has a FINISHED run of it with the same configuration digest (the
    parameters the method resolves now), whose code digest is the method's code now (and the task's data
    code digest the data code's), and which, if it started from another cell's model, started from that
    cell's newest run. ``dry_run`` only reports which cells would run ("pending"). ``workers`` > 1 or a
    ``scheduler`` address run the cells on Dask; every cell is claimed in ``claims`` (default: beside a local
    store, or in a database store) first.
    """
    from mlbench.runs.cell_claims import claims_url

    plans = plan_cells(suite, tracker, data_dir, echo, dry_run=dry_run)
    outcomes = {id(c): CellOutcome(c.method, c.task, c.seed, c.status, 0.0, c.detail) for c in plans if c.status != "run"}
    todo = [c for c in plans if c.status == "run"]
    if dry_run:
        outcomes.update({id(c): CellOutcome(c.method, c.task, c.seed, "pending") for c in todo})
        return [outcomes[id(c)] for c in plans]
    settings = Settings(suite, tracker.tracking_uri, str(tracker.artifact_dir), device,
                        str(data_dir) if data_dir else None, progress and workers <= 1 and scheduler is None,
                        claims_url(tracker.tracking_uri, claims), retry_failed, log_dir,
                        os.environ.get("MLBENCH_TORCH_THREADS"), tuple(plugins))
    if settings.claims and todo:
        open_claims(settings.claims)  # a bad claims database fails here, in one line, before any cell runs
    if workers <= 1 and scheduler is None:
        for i, cell in enumerate(todo, 1):
            outcome = run_cell(settings, cell)
            outcomes[id(cell)] = outcome
            echo(f"[{i}/{len(todo)}] {cell.name}: {said(outcome)}")
    else:
        from mlbench.runs.dask_pool import run_on_dask

        outcomes.update(run_on_dask(todo, settings, workers, scheduler, echo))
    return [outcomes[id(c)] for c in plans]


def open_claims(url: str) -> Any:
    """The claims table at ``url``, or one error line (the password masked) saying why it cannot be used."""
    from mlbench.runs.cell_claims import ClaimBoard
    from mlbench.runs.redaction import redact

    try:
        return ClaimBoard(url)
    except Exception as exc:  # SQLAlchemy, a missing driver, an unreachable server
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise MlbenchError(f"claims database {redact(url)}: {type(exc).__name__}: {redact(first)}") from None
