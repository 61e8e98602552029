"""``mlbench bench SUITE``: run a suite's methods x tasks x seeds, skipping the cells already in the store."""

from __future__ import annotations

import argparse
import sys

from mlbench.cli import options


#: (flag, argparse settings, help) of the options that spread a suite over workers.
WORKER_OPTIONS = (
    ("--workers", {"type": int, "default": 1, "metavar": "N"},
     "run N cells at once in local worker processes (one GPU each when several are visible)"),
    ("--scheduler", {"default": None, "metavar": "ADDRESS"},
     "run the cells on a running Dask cluster (e.g. tcp://host:8786; dask-jobqueue for SLURM/PBS)"),
    ("--claims", {"default": None, "metavar": "URL"},
     "database of the cells' claims (default: beside a local store, or the store's own database); give a "
     "PostgreSQL URL when the store is a tracking server and several commands share it"),
    ("--retry-failed", {"action": "store_true"}, "run again the cells that failed before (on the same code)"),
    ("--log-dir", {"default": None, "metavar": "DIR"},
     "each cell's output in DIR/<suite>/<task>/<method>-seed<seed>.log (default with workers: bench-logs), also "
     "kept as the run's artifact"),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a suite of methods x tasks x seeds, skipping cells already in the store")
    p.add_argument("suite", help="a named suite (paper-reuters, paper-rcv1, linear-reuters) or a YAML file")
    p.add_argument("--methods", nargs="+", default=None, help="restrict to these methods")
    p.add_argument("--tasks", nargs="+", default=None, help="restrict to these tasks")
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--preset", choices=["small", "paper"], default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--dry-run", action="store_true",
                   help="list the cells that would run (new, or stored with settings that have changed) and stop")
    w = p.add_argument_group("workers (Dask: every cell once, however many workers, commands and machines)")
    for flag, kw, what in WORKER_OPTIONS:
        w.add_argument(flag, help=what, **kw)
    options.add_task_and_store(p)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlbench.api import UsageError
    from mlbench.runs.matrix import run_suite
    from mlbench.runs.suite import load_suite, validate_suite

    suite = load_suite(args.suite)
    if args.seeds:
        suite.seeds = list(args.seeds)
    if args.methods:
        suite.methods = {m: suite.methods.get(m, {}) for m in args.methods}
        suite.labels = {m: label for m, label in suite.labels.items() if m in suite.methods}
    if args.tasks:
        suite.tasks = list(args.tasks)
    suite.tasks = [options.canonical_task(t) for t in suite.tasks]  # a path task is stored under one name
    if args.preset:
        suite.preset = args.preset
    validate_suite(suite)  # every method, parameter and task name before the store or any data is opened
    cells = suite.cells()
    print(f"suite {suite.name}: {len(suite.methods)} methods x {len(suite.tasks)} tasks x {len(suite.seeds)} seeds "
          f"= {len(cells)} cells (preset {suite.preset})", file=sys.stderr)
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    parallel = args.workers > 1 or args.scheduler is not None
    outcomes = run_suite(suite, options.make_tracker(args), device=args.device, data_dir=args.data_dir,
                         progress=not args.quiet, dry_run=args.dry_run, workers=args.workers, scheduler=args.scheduler,
                         claims=args.claims, retry_failed=args.retry_failed,
                         log_dir=args.log_dir or ("bench-logs" if parallel else None),
                         plugins=tuple(str(Path(p).resolve()) for p in (args.plugin or [])))
    counts = {s: sum(o.status == s for o in outcomes)
              for s in ("done", "skipped", "failed", "pending", "incompatible", "elsewhere")}
    skipped = f", {counts['incompatible']} skipped (the method cannot read the task)" if counts["incompatible"] else ""
    skipped += f", {counts['elsewhere']} running elsewhere" if counts["elsewhere"] else ""
    if args.dry_run:
        print(f"{counts['pending']} to run, {counts['skipped']} already complete, {counts['failed']} failed{skipped}")
        return 1 if counts["failed"] else 0
    print(f"{counts['done']} run, {counts['skipped']} already complete, {counts['failed']} failed{skipped}")
    for o in outcomes:
        if o.status == "failed":
            print(f"  failed: {o.method} on {o.task} seed {o.seed}: {o.detail}")
    return 1 if counts["failed"] else 0
