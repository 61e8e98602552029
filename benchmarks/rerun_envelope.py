"""How far a committed neural number moves when it is rerun under other execution settings.

For each neural configuration (row) of a report bundle, seed 0 of its base task is rerun with the suite the
row came from (``mlbench bench SUITE --methods M --tasks T --seeds 0 --threads N``) into a store of its own,
and its test predictions and metrics are compared with the committed run's. The result, one line per rerun,
is written to ``reruns.csv`` in the report folder, where ``mlbench report`` shows it beside each row's seed
spread. Run it again on another machine (another CPU kernel level, another thread count) and its lines are
added: the file records every execution setting that differs.

    python benchmarks/rerun_envelope.py reports/reuters --threads 2                # another thread count
    python benchmarks/rerun_envelope.py reports/reuters --threads 1 --rows seq2seq  # same settings: bit for bit?
    python benchmarks/rerun_envelope.py reports/reuters --threads 1 --rows minilm+finetune  # one row of a method

A row that started from another row's model (Seq2Set's RL phase from a Seq2Seq model) is rerun from the
rerun of that row, as the suite runs it. Rows whose runs carry no suite (a ``--param`` run, a tuned run) are
left out with a line saying so.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from metrics_speed import machine  # same folder: the machine description the other benchmarks print

#: Methods whose numbers depend on the thread count (torch); the others are left out.
NEURAL = ("xml-cnn", "cnn-rnn", "seq2seq", "seq2set", "minilm", "seq2seq-minilm", "seq2set-minilm")
COLUMNS = ("row", "method", "task", "seed", "config_digest", "code_digest", "committed_run", "rerun_threads",
           "rerun_cpu_capability", "rerun_cpu_model", "rerun_torch_version", "cells_differing",
           "committed_micro_f1", "rerun_micro_f1", "delta_micro_f1", "committed_subset_01_loss",
           "rerun_subset_01_loss", "delta_subset_01_loss", "measured_on")


def suites_by_digest() -> dict[tuple[str, str], tuple[str, str]]:
    """(method, configuration digest) -> (suite spec, suite name), over the named suites and benchmarks/suites."""
    from mlbench.runs.suite import NAMED_SUITES, cell_digest, load_suite

    specs = list(NAMED_SUITES) + [str(p) for p in sorted((Path(__file__).parent / "suites").glob("*.yaml"))]
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for spec in specs:
        suite = load_suite(spec)
        for method in suite.methods:
            try:
                found.setdefault((method, cell_digest(suite, method)), (spec, suite.name))
            except Exception:  # a method not installed here
                continue
    return found


def rerun(spec: str, methods: list[str], task: str, threads: int, store: Path) -> None:
    cmd = [sys.executable, "-m", "mlbench.cli.main", "bench", spec, "--methods", *methods, "--tasks", task,
           "--seeds", "0", "--threads", str(threads), "-q", "--tracking-uri", f"sqlite:///{store}/mlflow.db",
           "--artifact-dir", str(store / "artifacts")]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "MLBENCH_NO_PROGRESS": "1"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="a report folder (runs.csv, predictions/, tasks/)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the reruns (default 2)")
    parser.add_argument("--rows", nargs="*", default=None,
                        help="only these methods (every row of each) or rows (by the report's row name)")
    args = parser.parse_args()

    from mlbench.metrics import evaluate
    from mlbench.reports.bundle import Bundle
    from mlbench.runs.suite import load_suite, model_references
    from mlbench.runs.tracking import Tracker

    bundle = Bundle(args.bundle)
    base = bundle.meta["base_task"]
    rows = [r for r in bundle.records() if r.task == base and r.seed == 0 and r.method in NEURAL
            and (args.rows is None or r.method in args.rows or r.row_name in args.rows)]
    known = suites_by_digest()
    plan: dict[tuple[str, str], list] = {}
    for r in rows:
        hit = known.get((r.method, r.config_digest))
        if hit is None:
            print(f"left out: {r.row_name} ({r.config_label}): no suite of this checkout runs its configuration")
            continue
        plan.setdefault(hit, []).append(r)
    out_path = args.bundle / "reruns.csv"
    new = not out_path.exists()
    with tempfile.TemporaryDirectory(prefix="mlbench-envelope-") as tmp, open(out_path, "a", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        if new:
            writer.writerow(COLUMNS)
        store = Path(tmp)
        for (spec, name), committed in plan.items():
            suite = load_suite(spec)
            refs = model_references(suite)
            wanted = {r.method for r in committed}
            wanted |= {target for m in wanted for target in refs.get(m, {}).values()}  # a model started from
            methods = [m for m in suite.methods if m in wanted]  # in the suite's order: sources first
            t0 = time.perf_counter()
            rerun(spec, methods, base, args.threads, store)
            print(f"  {name}: {time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)
            tracker = Tracker(f"sqlite:///{store}/mlflow.db", artifact_dir=store / "artifacts")
            truth = bundle.truth(base)
            for r in committed:
                again = [run for run in tracker.finished_parent_runs(base, {"method": r.method, "seed": "0"})
                         if run.data.tags.get("mlbench.config_digest") == r.config_digest]
                if not again:
                    print(f"  no rerun of {r.row_name} finished")
                    continue
                tags = again[0].data.tags
                _, pred, scores = tracker.download_predictions(again[0].info.run_id)
                mine = bundle.predictions(r.run_id)
                differing = "" if mine is None else int((mine[0] != pred).nnz)
                m = evaluate(truth.Y, pred)
                writer.writerow([
                    r.row_name, r.method, r.task, 0, r.config_digest, tags.get("mlbench.code_digest", ""), r.run_id,
                    tags.get("mlbench.threads.torch_intra", ""), tags.get("mlbench.cpu.capability", ""),
                    tags.get("mlbench.cpu.model", ""), tags.get("mlbench.version.torch", ""), differing,
                    repr(r.metrics["micro_f1"]), repr(m["micro_f1"]), repr(m["micro_f1"] - r.metrics["micro_f1"]),
                    repr(r.metrics["subset_01_loss"]), repr(m["subset_01_loss"]),
                    repr(m["subset_01_loss"] - r.metrics["subset_01_loss"]), f"{machine()['cpu']}; {time.strftime('%Y-%m-%d')}",
                ])
                f.flush()
                print(f"  {r.row_name}: micro-F1 {r.metrics['micro_f1']:.4f} -> {m['micro_f1']:.4f}, "
                      f"{differing} test cells differ", flush=True)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
