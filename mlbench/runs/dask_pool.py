"""The matrix's cells as Dask tasks: a local cluster of worker processes, or any running Dask scheduler.

``mlbench bench SUITE --workers N`` starts a ``LocalCluster`` of N single-threaded worker processes (one GPU
each when several are visible: worker ``i`` takes GPU ``i mod G``); ``--scheduler tcp://host:8786`` sends the
cells to a cluster started elsewhere (``dask scheduler`` and ``dask worker`` on each machine, or
dask-jobqueue's ``SLURMCluster``/``PBSCluster`` and its scheduler address). Each cell is one task, a cell
that starts from another cell's model depending on that cell's task. A worker that dies mid-cell is
replaced, and the task scheduled once more (``allowed-failures`` 1): the cell's claim
(:mod:`mlbench.runs.cell_claims`) passes to the new attempt. One line per finished cell and an overall line
(done / running / failed / left, and an estimate of the time left) report progress; Ctrl-C cancels the tasks,
closes the local cluster (its worker processes end) and releases the claims of the cells they were running.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any, Callable

from mlbench.api import MlbenchError
from mlbench.runs.suite import CellOutcome

#: Attempts of a task beyond the first after its worker died (the claim passes to the new attempt).
ALLOWED_FAILURES = 1


def run_on_dask(cells: list[Any], settings: Any, workers: int, scheduler: str | None,
                echo: Callable[[str], None]) -> dict[int, CellOutcome]:
    """Run ``cells`` (planned, in suite order) as Dask tasks; ``{id(cell): outcome}``."""
    try:
        import dask
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:  # pragma: no cover - a dependency
        raise MlbenchError(f"--workers and --scheduler need Dask distributed ({exc}); pip install 'dask[distributed]'")
    from mlbench.runs.cell import run_cell, said

    cluster = None
    for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.core"):
        if logging.getLogger(name).getEffectiveLevel() < logging.WARNING:  # unless -v: its INFO lines are noise here
            logging.getLogger(name).setLevel(logging.ERROR)
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                          "distributed.worker.daemon": False}):  # a worker's own processes (DataLoader) may fork
        if scheduler:
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise MlbenchError(f"no Dask scheduler answers at {scheduler} ({exc})") from exc
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
    started_pids = _worker_pids(client) if cluster is not None else set()
    futures: dict[tuple[str, str, int], Any] = {}
    cell_of: dict[str, Any] = {}
    outcomes: dict[int, CellOutcome] = {}
    try:
        # every worker's address (scheduler_info() lists only the first five in some Dask releases)
        home = placement(cells, sorted(client.nthreads()))
        for i, cell in enumerate(cells):
            deps = [futures[(target, cell.task, cell.seed)] for target in cell.sources.values()
                    if (target, cell.task, cell.seed) in futures]
            where = {"workers": [home[id(cell)]], "allow_other_workers": True} if id(cell) in home else {}
            # in suite order on each worker (Dask would run a worker's queue newest first): a task's seeds and
            # its shuffled copy follow each other, while the fit they share is still in the worker's cache
            future = client.submit(run_cell, settings, cell, *deps, key=f"mlbench-cell-{cell.claim_key}", pure=False,
                                   priority=len(cells) - i, **where)
            futures[(cell.method, cell.task, cell.seed)] = future
            cell_of[future.key] = cell
        started, done, failed = time.monotonic(), 0, 0
        slots = workers if cluster is not None else max(len(client.nthreads()), 1)
        for future in as_completed(list(futures.values())):
            cell = cell_of[future.key]
            try:
                outcome = future.result()
            except Exception as exc:  # the task itself died twice with its worker (KilledWorker), or Dask failed
                outcome = CellOutcome(cell.method, cell.task, cell.seed, "failed", 0.0, f"{type(exc).__name__}: {exc}")
            outcomes[id(cell)] = outcome
            done += 1
            failed += outcome.status == "failed"
            left = len(cells) - done
            running = min(slots, left)
            elapsed = time.monotonic() - started
            eta = f", about {elapsed / done * left / 60:.0f} min left" if left else ""  # at the pace so far
            echo(f"[{done}/{len(cells)}] {cell.name}: {said(outcome)}")
            echo(f"  cells: {done - failed} done, {running} running, {failed} failed, {left - running} waiting{eta}")
        return outcomes
    except KeyboardInterrupt:
        pids = (_worker_pids(client) | started_pids) if cluster is not None else set()  # only this command's workers
        client.cancel(list(futures.values()), force=True)
        _release(settings, pids)
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def placement(cells: list[Any], workers: list[str]) -> dict[int, str]:
    """A preferred worker for each cell (``{id(cell): address}``): the cells of one method on one dataset (a
    task and its variants, every seed) go to one worker, the groups spread over the workers largest first.

    A worker process keeps what its cells computed (the TF-IDF of a corpus, a deterministic method's fit,
    which BR and PCC reuse across seeds and across a task's shuffled copy): with the cells scattered, two
    workers each refit what one would have fitted once: on ``linear-reuters`` two workers with the cells
    scattered took 0.87x the time of one (reports/performance/bench_workers.md), with this placement 1.03x
    (both measured alternately in one run); the cells are also submitted with decreasing priority, so each
    worker runs its queue in suite order. The preference is loose (Dask's
    ``allow_other_workers``): an idle worker steals queued cells from a busy one, a cell of a worker that
    died goes to another, and workers that join later take their share the same way. With fewer groups than
    workers the groups are one method on one task; with fewer of those still, no cell has a preference (Dask
    hands each to the next free worker): stealing starts only once a cell's duration is known, so a
    preference that leaves workers idle would cost more than the caches save (a suite of long neural cells on
    many GPUs).
    """
    if len(workers) < 2 or os.environ.get("MLBENCH_NO_PLACEMENT"):  # the switch: benchmarks/bench_workers.py
        return {}
    for key in (lambda c: (c.method, c.dataset or c.task), lambda c: (c.method, c.task)):
        groups: dict[tuple[str, str], list[Any]] = {}
        for cell in cells:
            groups.setdefault(key(cell), []).append(cell)
        if len(groups) >= len(workers):
            break
    else:
        return {}
    load = {w: 0 for w in workers}
    home: dict[int, str] = {}
    for members in sorted(groups.values(), key=len, reverse=True):  # largest first, each to the least loaded
        worker = min(workers, key=lambda w: (load[w], workers.index(w)))
        load[worker] += len(members)
        home.update({id(cell): worker for cell in members})
    return home


def _worker_pids(client: Any) -> set[int]:
    """The process ids of the cluster's workers (asked of each worker)."""
    try:
        return {int(pid) for pid in client.run(os.getpid).values()}
    except Exception:  # the scheduler or the workers are already gone
        return set()


def _release(settings: Any, pids: set[int]) -> None:
    """Give back the claims of the cells this command's local workers were running, and end their runs KILLED."""
    if not settings.claims or not pids:
        return
    from mlbench.runs.cell_claims import ClaimBoard
    from mlbench.runs.cell import end_lost_runs
    from mlbench.runs.tracking import Tracker

    try:
        gone = ClaimBoard(settings.claims).release_running(socket.gethostname(), pids)
        if gone:
            tracker = Tracker(settings.tracking_uri, artifact_dir=settings.artifact_dir)
            for row in gone:
                task = row["description"].split(" on ", 1)[1].rsplit(" seed ", 1)[0]
                end_lost_runs(tracker, task, {row["owner"]})
    except Exception as exc:  # Ctrl-C must still end the command
        logging.getLogger(__name__).warning("could not release the running cells' claims: %s", exc)
