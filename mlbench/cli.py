"""The ``mlbench`` command line: the argument parser and ``main``, the console entry point.

This module owns the parser (every subcommand and option), the error format
(one ``mlbench: error:`` line; usage errors exit 2, data errors 1) and the
dispatch to the ``cmd_*`` functions of :mod:`mlbench.commands`, re-exported
here. Heavy libraries (torch, MLflow, Optuna) are imported inside the commands
that need them, so ``mlbench list`` and ``mlbench --help`` stay fast.
"""

from __future__ import annotations

import sys

try:  # Ctrl-C while the libraries load: a line, not a traceback
    import argparse
    import logging
    import os
    from pathlib import Path
    from typing import NoReturn, Sequence

    from mlbench import __version__
    from mlbench.api import MlbenchError, UsageError
    from mlbench.commands import (  # noqa: F401  (the commands are importable from here, as before)
        RUN_ID,
        _apply_task_options,
        _default_uri,
        _load_plugins,
        cmd_bench,
        cmd_check,
        cmd_compare,
        cmd_data,
        cmd_list,
        cmd_report,
        cmd_run,
        cmd_ui,
        parse_params,
        parse_value,
    )
    from mlbench.redaction import install_log_redaction, redact
    from mlbench.registry import UnknownNameError
except KeyboardInterrupt:
    print("mlbench: interrupted", file=sys.stderr)
    raise SystemExit(130) from None


# ------------------------------------------------------------------- parser


class OneLineParser(argparse.ArgumentParser):
    """argparse with the CLI's error format: one ``mlbench: error:`` line (exit 2), not the usage block."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(2, f"mlbench: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="mlbench", description="Benchmark harness for multi-label classification."
    )
    parser.add_argument("--version", action="version", version=f"mlbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def tracking_opts(p: argparse.ArgumentParser) -> None:
        # default filled in by main(): reading it imports mlbench.tracking (numpy, scipy), too slow for --help
        p.add_argument("--tracking-uri", default=None,
                       help="MLflow store or server (default: sqlite:///mlflow.db in the working directory)")

    def plugin_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--plugin", action="append", metavar="FILE.py",
                       help="register the methods/tasks defined in a local Python file (repeatable)")

    def task_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--task-option", action="append", metavar="KEY=VALUE",
                       help="for a task read from files (--task PATH): text=, labels=, id=, split= column names, "
                            "label_sep= (default whitespace) (repeatable)")

    p = sub.add_parser("list", help="list methods and tasks")
    plugin_opt(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="train a method on a task, evaluate on test, log to MLflow")
    p.add_argument("--method", "-m", required=True)
    p.add_argument("--task", "-t", required=True, help="e.g. reuters, reuters-shuffled, rcv1-trim10, synthetic, or a path: ./folder, ./data.jsonl-trim10")
    p.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                   help="override a hyperparameter (repeatable)")
    p.add_argument("--preset", choices=["small", "paper"], default="small",
                   help="size preset: small (CPU-sized, default) or paper (the paper's sizes)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="SEED")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    t = p.add_argument_group("tuning (Optuna: TPE + median pruning on validation micro-F1)")
    t.add_argument("--trials", type=int, default=None, metavar="N",
                   help="tune: the study ends with N finished trials (rerunning the command resumes it), "
                        "then the best configuration is evaluated on test")
    t.add_argument("--refit", action="store_true", help="refit the best configuration on train+valid before testing")
    t.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage: an RDB URL (sqlite:///optuna.db, the default; postgresql://...) "
                        "or a journal file path")
    t.add_argument("--study-name", default=None, metavar="NAME",
                   help="default: <method>-<task>-seed<seed>-<preset>-<fingerprint>")
    t.add_argument("--n-jobs", type=int, default=1, metavar="K",
                   help="K worker processes on this machine sharing the study (one GPU each when several are visible)")
    t.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="start no new trial after S seconds, then evaluate the best so far")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="the dataset's folder (default: $MLBENCH_DATA/<dataset> or ~/.cache/mlbench/<dataset>)")
    tracking_opts(p)
    p.add_argument("--artifact-dir", default="mlartifacts", help="artifact folder of a local store (default ./mlartifacts)")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("--no-predictions", action="store_true", help="do not store test predictions as an artifact")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    task_opt(p)
    plugin_opt(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("data", help="fetch a dataset or describe a task")
    p.add_argument("action", choices=["fetch", "info"])
    p.add_argument("task")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--top", type=int, default=10, help="labels to show with info")
    task_opt(p)
    plugin_opt(p)
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("check", help="run the method contract (shapes, label order, determinism, ...) on a method")
    p.add_argument("method")
    p.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                   help="override a hyperparameter for the check (repeatable)")
    plugin_opt(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("bench", help="run a suite of methods x tasks x seeds, skipping cells already in the store")
    p.add_argument("suite", help="a named suite (paper-reuters, paper-rcv1, linear-reuters) or a YAML file")
    p.add_argument("--methods", nargs="+", default=None, help="restrict to these methods")
    p.add_argument("--tasks", nargs="+", default=None, help="restrict to these tasks")
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--preset", choices=["small", "paper"], default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--artifact-dir", default="mlartifacts")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument("--dry-run", action="store_true",
                   help="list the cells that would run (new, or stored with settings that have changed) and stop")
    tracking_opts(p)
    task_opt(p)
    plugin_opt(p)
    p.set_defaults(func=cmd_bench)

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
    p.add_argument("--resamples", type=int, default=1000, help="paired bootstrap resamples")
    p.add_argument("--command-note", default=None, help="the command line to print as 'regenerate with'")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--artifact-dir", default="mlartifacts")
    tracking_opts(p)
    task_opt(p)
    plugin_opt(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="paired bootstrap of two runs' test predictions")
    p.add_argument("run_a", help="a run id, or several separated by commas (e.g. one per seed): their mean is compared")
    p.add_argument("run_b", help="the same for the other side")
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--artifact-dir", default="mlartifacts")
    tracking_opts(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("ui", help="open the MLflow UI on 127.0.0.1 over the same store")
    tracking_opts(p)
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=cmd_ui)
    return parser


#: Loggers whose INFO lines describe MLflow's own store upkeep (creating and upgrading tables).
QUIET_LOGGERS = ("mlflow.store.db.utils", "alembic")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if hasattr(args, "tracking_uri") and args.tracking_uri is None:
            args.tracking_uri = _default_uri()  # imports the tracking module (numpy): Ctrl-C may land here
    except KeyboardInterrupt:
        print("mlbench: interrupted", file=sys.stderr)
        return 130
    # reports and suites read artifacts back (predictions, saved models): no progress bar per file
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    install_log_redaction()
    if not args.verbose:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        if args.func is not cmd_list:  # list shows a broken plugin file as a row instead
            _load_plugins(args)
        _apply_task_options(args)
        return int(args.func(args) or 0)
    except (UnknownNameError, UsageError) as exc:
        print(f"mlbench: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except MlbenchError as exc:
        print(f"mlbench: error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mlbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (``mlbench list | head``): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
