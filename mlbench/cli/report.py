"""``mlbench report``: a task's report from the store (``--task``), from a bundle (``--from``), or a comparison
across tasks (``--tasks``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mlbench.api import MlbenchError, UsageError
from mlbench.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write Markdown tables and PNG figures from the runs in the store")
    p.add_argument("--task", default=None, help="the base task (Table 1); its -shuffled and -trim<k> runs are used too")
    p.add_argument("--tasks", default=None, metavar="T1,T2,...",
                   help="compare methods across these tasks instead: metric per task, mean ranks, Friedman test, "
                        "critical-difference diagram (default folder reports/across-tasks)")
    p.add_argument("--metric", default="micro_f1", help="with --tasks: the test metric to rank on (default micro_f1)")
    p.add_argument("--out", default=None,
                   help="output folder (default reports/<task>); it also receives the runs behind the report "
                        "(runs.csv, predictions/, tasks/, bundle.json)")
    p.add_argument("--from", dest="from_dir", default=None, metavar="DIR",
                   help="render from a report folder's runs.csv and predictions/ alone, without a store")
    p.add_argument("--config", default=None, metavar="WHICH",
                   help="only runs of: default (no parameter overridden), tuned, a suite name or YAML file, "
                        "or a configuration digest")
    p.add_argument("--merge", action="append", default=[], metavar="DIR",
                   help="also the runs of this earlier report folder (repeatable; it may be --out itself) where "
                        "the store has no run of the same method, task, seed and configuration; with --tasks, the "
                        "comparison reads the folder's runs.csv too")
    p.add_argument("--overview", default=None, metavar="DIR",
                   help="write DIR/README.md listing every report bundle in DIR's folders (datasets, rows, seeds, "
                        "devices, finding)")
    p.add_argument("--resamples", type=int, default=1000, help="paired bootstrap resamples")
    p.add_argument("--command-note", default=None, help="the command line to print as 'regenerate with'")
    options.add_data_dir(p)
    options.add_tracking(p)
    options.add_task_option(p)
    options.add_plugin(p)
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from mlbench.reports.bundle_input import MAX_RESAMPLES
    from mlbench.reports.page import render_report, write_report

    if not 1 <= args.resamples <= MAX_RESAMPLES:
        raise UsageError(f"--resamples must be in [1, {MAX_RESAMPLES:,}], got {args.resamples}")
    if args.overview:
        if args.task or args.tasks or args.from_dir:
            raise UsageError("--overview reads the bundles already written: give it alone")
        from mlbench.reports.overview import write_overview

        print(f"wrote {write_overview(Path(args.overview))}")
        return 0
    if args.from_dir:
        if args.task or args.config or args.tasks or args.merge:
            raise UsageError("--from renders a bundle as it was written: --task, --tasks, --config and --merge "
                             "do not apply")
        readme = render_report(Path(args.from_dir), Path(args.out) if args.out else None)
        print(f"wrote {readme} and its figures from the bundle in {args.from_dir}")
        return 0
    for folder in args.merge:  # nothing there is a usage error; what is there is read (and refused) as a bundle
        if not all(os.path.lexists(Path(folder) / name) for name in ("runs.csv", "bundle.json")):
            raise UsageError(f"--merge {folder}: no report bundle there (runs.csv and bundle.json)")
    if args.tasks:
        return report_across_tasks(args)
    if not args.task:
        raise UsageError("report needs --task T (from the store), --tasks T1,T2,... (a comparison across tasks), "
                         "--from DIR (from a bundle) or --overview DIR (the list of the bundles in DIR)")
    args.task = options.canonical_task(args.task)
    out_dir = Path(args.out) if args.out else Path("reports") / args.task.lstrip("/")
    command = "mlbench report --task " + args.task + (f" --out {args.out}" if args.out else "")
    if args.config:
        command += f" --config {args.config}"
    command += "".join(f" --merge {m}" for m in args.merge)
    if args.command_note:
        command = args.command_note
    readme = write_report(
        options.make_tracker(args), out_dir, args.task, command=command, data_dir=args.data_dir,
        n_resamples=args.resamples, config=args.config, merge=[Path(m) for m in args.merge],
    )
    print(f"wrote {readme}, its figures and its evidence (runs.csv, predictions/, tasks/)")
    return 0


def report_across_tasks(args: argparse.Namespace) -> int:
    import tempfile

    from mlbench.reports.bundle import merged_records
    from mlbench.reports.across_tasks import check_independent, write_cross_task_report
    from mlbench.reports.records import collect_runs, filter_config, label_rows

    if args.task:
        raise UsageError("give --task or --tasks, not both")
    tasks = [options.canonical_task(t.strip()) for t in args.tasks.split(",") if t.strip()]
    if len(tasks) < 2:
        raise UsageError("--tasks needs at least two comma-separated tasks")
    check_independent(tasks)
    out_dir = Path(args.out) if args.out else Path("reports") / "across-tasks"
    command = args.command_note or f"mlbench report --tasks {','.join(tasks)} --metric {args.metric}" + (
        f" --out {args.out}" if args.out else "") + "".join(f" --merge {m}" for m in args.merge)
    tracker = options.make_tracker(args)
    with tempfile.TemporaryDirectory() as scratch:
        records = collect_runs(tracker, tasks)  # the filter applies after the merge, to all runs alike
        copied: dict[str, Path | None] = {}
        if args.merge:  # the committed bundles' runs join the store's; a store run of the same cell wins
            records, copied = merged_records(records, [Path(m) for m in args.merge], tasks, Path(scratch))
            for task in tasks:  # a bundle's runs carry no start time, so "the newest split" cannot choose
                splits = sorted({r.fingerprint for r in records if r.task == task})
                if len(splits) > 1:
                    raise MlbenchError(f"task {task}: the store and the merged folders hold runs on {len(splits)} "
                                       f"different splits (fingerprints {', '.join(splits)}); compare them "
                                       "separately")
        records = label_rows(filter_config(records, args.config))
        readme = write_cross_task_report(tracker, records, tasks, out_dir, metric=args.metric, command=command,
                                         data_dir=args.data_dir, copied=copied)
    print(f"wrote {readme}, its tables (tables/*.csv, *.tex), cd_diagram.png and its evidence (runs.csv, "
          "predictions/, tasks/)")
    return 0
