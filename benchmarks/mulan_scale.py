"""Fit time and peak memory of every built-in method that reads features, on the two largest MULAN benchmarks.

mediamill (30,993 train documents, 120 dense features, 101 labels) and delicious (12,920 train documents, 500
sparse features, 983 labels) are where a method's cost shows. Each (method, dataset) runs as its own process,
``mlbench run --method M --task D --seeds 0 --threads 1 --no-tracking`` with the `small` preset the `mulan`
suite uses, so its peak resident memory (``ru_maxrss`` of the child, from ``os.wait4``) is that cell's alone;
the fit time is the one the run reports, the wall time includes loading the task and evaluating. A standalone
``seq2set`` includes its maximum-likelihood phase (in the suite it starts from the seq2seq cell's model).

    python benchmarks/mulan_scale.py --out reports/performance/mulan_scale.md
    python benchmarks/mulan_scale.py --methods br pcc mlknn rakel lp --out reports/performance/mulan_scale.md

The machine is shared: the load average is recorded before each cell, beside its times. Lines of a later call
for other methods are merged into the same file (a cell measured again replaces its line).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from metrics_speed import machine  # same folder: the machine description the other benchmarks print

METHODS = ("br", "pcc", "mlknn", "rakel", "lp", "xml-cnn", "cnn-rnn", "seq2seq", "seq2set")
DATASETS = ("mediamill", "delicious")
HEADER = "| method | dataset | fit (s) | wall (s) | peak RSS (MiB) | micro-F1 | load before |"


def measure(method: str, dataset: str, timeout: float) -> dict[str, str]:
    """One cell in a process of its own: its reported fit time and micro-F1, its wall time and peak RSS."""
    cmd = [sys.executable, "-m", "mlbench.cli.main", "run", "--method", method, "--task", dataset, "--seeds", "0",
           "--threads", "1", "--no-tracking"]
    env = {**os.environ, "MLBENCH_NO_PROGRESS": "1", "MLBENCH_LINEAR_THREADS": "1", "OMP_NUM_THREADS": "1"}
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    out = proc.stdout.read() if proc.stdout else ""
    row = next((line.split() for line in out.splitlines() if line.startswith(f"{method} ") and dataset in line), None)
    ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and row is not None
    return {
        "method": method, "dataset": dataset,
        "fit": row[-1] if ok else ("timed out" if wall >= timeout else "failed"),
        "wall": f"{wall:.0f}", "rss": f"{usage.ru_maxrss / 1024:.0f}",
        "f1": row[7] if ok and len(row) > 7 else "–", "load": f"{load:.1f}",
        "error": "" if ok else re.sub(r"\s+", " ", out.strip().splitlines()[-1] if out.strip() else "")[:200],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per cell before it is stopped")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lines: dict[tuple[str, str], str] = {}
    if args.out is not None and args.out.exists():  # keep the cells of earlier calls
        for line in args.out.read_text().splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) == 7 and cells[0] in METHODS and cells[1] in DATASETS:
                lines[(cells[0], cells[1])] = line
    errors: list[str] = []
    text = render(lines, errors)
    for dataset in args.datasets:
        for method in args.methods:
            m = measure(method, dataset, args.timeout)
            lines[(method, dataset)] = (f"| {method} | {dataset} | {m['fit']} | {m['wall']} | {m['rss']} | {m['f1']} | "
                                        f"{m['load']} |")
            print(lines[(method, dataset)], flush=True)
            if m["error"]:
                errors.append(f"- {method} on {dataset}: {m['error']}")
            text = render(lines, errors)
            if args.out is not None:  # after every cell: a long call stopped midway keeps what it measured
                part = args.out.with_name(args.out.name + ".part")
                part.write_text(text)
                os.replace(part, args.out)  # whole or not at all: the next call reads this file back
    print(text)


def render(lines: dict[tuple[str, str], str], errors: list[str]) -> str:
    """The page: the cells' lines in the order of ``DATASETS`` and ``METHODS``, then the cells that failed."""
    order = {(m, d): (DATASETS.index(d) if d in DATASETS else 9, METHODS.index(m)) for m, d in lines}
    info = machine()
    return "\n".join([
        "# Fit time and peak memory on mediamill and delicious", "",
        "Generated by `python benchmarks/mulan_scale.py` (its docstring says how): one process per cell, `small` "
        "preset, seed 0, one torch thread and one LIBLINEAR thread, on "
        f"{info['cpu']} ({os.cpu_count()} cores, shared: the load average before each cell is in its line). "
        "Peak RSS is the cell's process's resident-memory high-water mark; the machine has 24 GiB.", "",
        HEADER, "|---|---|---|---|---|---|---|",
        *(lines[k] for k in sorted(lines, key=lambda k: order[k])), "",
        *(["Cells that did not finish:", "", *errors, ""] if errors else []),
    ])


if __name__ == "__main__":
    main()
