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
        for cell in cells:
            deps = [futures[(target, cell.task, cell.seed)] for target in cell.sources.values()
                    if (target, cell.task, cell.seed) in futures]
            future = client.submit(run_cell, settings, cell, *deps, key=f"mlbench-cell-{cell.claim_key}", pure=False)
            futures[(cell.method, cell.task, cell.seed)] = future
            cell_of[future.key] = cell
        started, done, failed = time.monotonic(), 0, 0
        slots = workers if cluster is not None else max(len(client.scheduler_info()["workers"]), 1)
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


def _worker_pids(client: Any) -> set[int]:
    """The process ids of the cluster's workers (asked of each worker)."""
    import os

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
