"""The bench matrix on 1 and 2 workers, and the engines it could run on, measured.

Two parts, both on this machine:

1. **Engines.** For Dask distributed (LocalCluster), Ray and submitit's local executor: the time to start two
   workers, and the time per task of 40 trivial tasks on them (the overhead an engine adds to every cell),
   in one run, alternating the engines three times; medians. An engine that is not installed is skipped.
2. **Speed-up.** ``mlbench bench linear-reuters`` (every cell of the suite) on 1 and on 2 workers (fresh
   stores, the TF-IDF disk cache off; each process keeps its in-memory TF-IDF and model caches, as a user's
   command does), and on 2 workers with the cells scattered as Dask alone places them (no preferred worker
   per method and dataset), alternating, ``--repeats`` times; the wall time of each, the speed-ups, and the
   engine's overhead per cell (the 2-worker wall time against the sum of its cells' own times divided by the
   workers).

    python benchmarks/bench_workers.py --out reports/performance/bench_workers.md

The engines part needs Ray and submitit beside Dask (``pip install ray submitit`` in a separate environment:
Ray alone is about 240 MB); ``--skip-engines`` / ``--skip-speedup`` run one part.

Record the load (``uptime``) beside the figures: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRIVIAL_TASKS = 40


def _noop(x: int) -> int:
    return x + 1


def engine_dask() -> tuple[float, float]:
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    started = time.perf_counter() - t0
    t0 = time.perf_counter()
    client.gather([client.submit(_noop, i, pure=False) for i in range(TRIVIAL_TASKS)])
    per_task = (time.perf_counter() - t0) / TRIVIAL_TASKS
    client.close()
    cluster.close()
    return started, per_task


def engine_ray() -> tuple[float, float]:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(_noop)
    ray.get([remote.remote(i) for i in range(2)])  # two workers up
    started = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.get([remote.remote(i) for i in range(TRIVIAL_TASKS)])
    per_task = (time.perf_counter() - t0) / TRIVIAL_TASKS
    ray.shutdown()
    return started, per_task


def engine_submitit() -> tuple[float, float]:
    import submitit

    with tempfile.TemporaryDirectory() as tmp:
        executor = submitit.LocalExecutor(folder=tmp)
        executor.update_parameters(timeout_min=10)
        t0 = time.perf_counter()
        executor.submit(_noop, 0).result()  # a local job is a process of its own: no pool to start
        started = time.perf_counter() - t0
        t0 = time.perf_counter()
        jobs = [executor.submit(_noop, i) for i in range(TRIVIAL_TASKS)]
        [j.result() for j in jobs]
        per_task = (time.perf_counter() - t0) / TRIVIAL_TASKS
    return started, per_task


ENGINES = {"dask": engine_dask, "ray": engine_ray, "submitit": engine_submitit}


def engines(repeats: int) -> list[str]:
    times: dict[str, list[tuple[float, float]]] = {}
    skipped: dict[str, str] = {}
    for _ in range(repeats):
        for name, fn in ENGINES.items():
            if name in skipped:
                continue
            try:
                times.setdefault(name, []).append(fn())
            except ImportError as exc:
                skipped[name] = str(exc)
    lines = ["| engine | start two workers (s) | overhead per task (ms) |", "|---|---|---|"]
    for name, runs in times.items():
        lines.append(f"| {name} | {statistics.median(s for s, _ in runs):.2f} | "
                     f"{1000 * statistics.median(t for _, t in runs):.1f} |")
    lines += [f"| {name} | not installed ({why}) | |" for name, why in skipped.items()]
    return lines


#: The matrix of the speed-up part: the whole `linear-reuters` suite (BR and PCC on Reuters, its shuffled copy
#: and four trims: cells of one to ten seconds). A fit a process has made is reused by its later
#: cells of the same training data (seeds of the deterministic BR, a task and its shuffled copy), so one worker
#: does fewer fits than two, each with a cache of its own: the measurement includes that.
MATRIX = ["linear-reuters"]


#: The arms, measured alternately: (label, workers, each cell's preferred worker as `bench` chooses it). The
#: third arm scatters the cells as Dask alone would (``MLBENCH_NO_PLACEMENT``): what the placement is worth.
ARMS = [("1", 1, True), ("2", 2, True), ("2, cells scattered", 2, False)]


def bench(workers: int, folder: Path, placed: bool = True) -> tuple[float, float, int]:
    """Wall seconds of one `bench` of :data:`MATRIX` on ``workers``, the sum of its cells' seconds, and cells run."""
    env = {**os.environ, "MLBENCH_FEATURE_CACHE": "off", "MLBENCH_NO_PROGRESS": "1", "MLBENCH_LINEAR_THREADS": "1"}
    if not placed:
        env["MLBENCH_NO_PLACEMENT"] = "1"
    cmd = [sys.executable, "-m", "mlbench.cli.main", "bench", *MATRIX, "--workers", str(workers), "-q"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    cells = [float(s) for s in re.findall(r"\((\d+(?:\.\d+)?) s\)$", out.stderr + out.stdout, re.MULTILINE)]
    return wall, sum(cells), len(cells)


def speedup(repeats: int) -> list[str]:
    rows: dict[str, list[tuple[float, float, int]]] = {label: [] for label, _, _ in ARMS}
    for _ in range(repeats):
        for label, workers, placed in ARMS:
            with tempfile.TemporaryDirectory(prefix="mlbench-workers-") as tmp:
                rows[label].append(bench(workers, Path(tmp), placed))
    wall = {label: statistics.median(w for w, _, _ in runs) for label, runs in rows.items()}
    lines = ["| workers | wall (s, median) | runs | cells | work in cells (s, median) |", "|---|---|---|---|---|"]
    for label, runs in rows.items():
        lines.append(f"| {label} | {wall[label]:.1f} | {', '.join(f'{w:.1f}' for w, _, _ in runs)} | {runs[0][2]} | "
                     f"{statistics.median(c for _, c, _ in runs):.1f} |")
    two, cells = wall["2"], rows["2"][0][2]
    busy = statistics.median(c for _, c, _ in rows["2"])
    lines += ["", f"Speed-up with 2 workers: **{wall['1'] / two:.2f}x** ({wall['1'] / wall['2, cells scattered']:.2f}x "
              f"with the cells scattered). The 2-worker runs' cells took {busy:.1f} s of work in all; the engine's "
              f"overhead per cell, (wall - work / 2) / cells: {(two - busy / 2) / max(cells, 1):.2f} s."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--skip-engines", action="store_true")
    parser.add_argument("--skip-speedup", action="store_true")
    parser.add_argument("--engines-python", default=None, metavar="PYTHON",
                        help="measure the engines with this interpreter (an environment that has Ray and submitit)")
    parser.add_argument("--engines-table", action="store_true", help=argparse.SUPPRESS)  # that interpreter's part
    args = parser.parse_args()
    if args.engines_table:
        print("\n".join(engines(args.repeats)))
        return
    load = os.getloadavg()
    title = "Engines for the bench matrix" if args.skip_speedup else "The bench matrix on workers"
    parts = [f"# {title}", "",
             f"Generated by `python benchmarks/bench_workers.py {' '.join(sys.argv[1:])}` on "
             f"{os.cpu_count()} cores, load average at the start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.", ""]
    if not args.skip_engines:
        if args.engines_python:
            table = subprocess.run([args.engines_python, __file__, "--engines-table", "--repeats", str(args.repeats)],
                                   capture_output=True, text=True, check=True).stdout.strip().splitlines()
            where = f" (measured with {args.engines_python})"
        else:
            table, where = engines(args.repeats), ""
        parts += [f"## Engines (two local workers, trivial tasks){where}", "", *table, ""]
    if not args.skip_speedup:
        parts += [f"## `mlbench bench {' '.join(MATRIX)}`, 1 against 2 workers", "", *speedup(args.repeats), ""]
    parts += [f"Load average at the end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}.", ""]
    text = "\n".join(parts)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
