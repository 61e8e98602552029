"""``mlbench run``: fit a method on a task (or tune it), evaluate on test, log to MLflow, print a summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlbench.api import UsageError
from mlbench.cli import options
from mlbench.runs.redaction import redact


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="train a method on a task, evaluate on test, log to MLflow")
    p.add_argument("--method", "-m", required=True)
    p.add_argument("--task", "-t", required=True, help="e.g. reuters, reuters-shuffled, rcv1-trim10, synthetic, or a path: ./folder, ./data.jsonl-trim10")
    options.add_params(p)
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
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("--no-predictions", action="store_true", help="do not store test predictions as an artifact")
    options.add_task_and_store(p)
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from mlbench.api import validate_params
    from mlbench.data.tasks import check_task_name, get_task, task_inputs
    from mlbench.registry import get_method
    from mlbench.runs.runner import format_summary, log_aggregate, resolve_device, run_once

    method_cls = get_method(args.method)
    check_task_name(args.task)
    # before the method is built: a pair that cannot work is refused even where the method's extra is missing
    refuse_incompatible(method_cls, task_inputs(args.task), args.task)
    params = options.parse_params(args.param)
    validate_params(method_cls, args.preset, params)  # types and ranges, before loading any data
    method_cls(preset=args.preset, **params)  # the method's own cross-parameter checks
    options.check_seeds(args.seeds)
    check_tuning_options(args)
    options.check_data_dir(args.data_dir)
    device = resolve_device(args.device, method_cls)
    default_uri = options.default_uri()  # before MLflow exports the tracker's URI to the environment
    tracker = None if args.no_tracking else options.make_tracker(args)  # a bad store fails here, before any data is read
    task = get_task(args.task, data_dir=args.data_dir)
    refuse_incompatible(method_cls, task.inputs, task.name)  # a copy that decides its kind (RCV1) is known now
    print(
        f"task {task.name}: {len(task.train)} train / {len(task.valid)} valid / {len(task.test)} test, "
        f"{task.n_labels} labels, fingerprint {task.fingerprint}",
        file=sys.stderr,
    )
    results = []
    for seed in args.seeds:
        if args.trials is None:
            results.append(
                run_once(
                    method_cls,
                    task,
                    params,
                    seed=seed,
                    device=device,
                    tracker=tracker,
                    preset=args.preset,
                    progress=not args.quiet,
                    log_predictions=not args.no_predictions,
                )
            )
            continue
        from mlbench.runs.tuning.config import DEFAULT_STORAGE, StudyPending, TuneSpec
        from mlbench.runs.tuning.driver import tune

        study_name = args.study_name
        if study_name and len(args.seeds) > 1:
            study_name = f"{study_name}-seed{seed}"
        spec = TuneSpec(
            method=args.method,
            task=args.task,
            seed=seed,
            trials=args.trials,
            fixed=params,
            preset=args.preset,
            data_dir=str(args.data_dir) if args.data_dir else None,
            device=args.device,
            storage=args.storage or DEFAULT_STORAGE,
            study_name=study_name,
            timeout=args.timeout,
            n_jobs=args.n_jobs,
            refit=args.refit,
            tracking_uri=tracker.tracking_uri if tracker is not None else None,
            artifact_dir=args.artifact_dir,
            plugins=tuple(str(Path(p).resolve()) for p in (args.plugin or [])),
            progress=not args.quiet,
            log_predictions=not args.no_predictions,
        )
        try:
            results.append(tune(spec, method_cls, task, tracker))
        except StudyPending as exc:
            print(f"mlbench: {exc}", file=sys.stderr)  # another worker finishes this seed
    if not results:
        return 0
    print(format_summary(results))
    if tracker is not None:
        # over every seed, or not at all (a seed still finishing elsewhere logs it when rerun)
        agg = None if len(results) < len(args.seeds) else log_aggregate(
            tracker, method_cls, task, results, args.preset,
            params if args.trials is not None else results[0].params,
            extra_tags={"tuned": "true", "trials": str(args.trials)} if args.trials is not None else None,
        )
        print(
            f"\nlogged {len(results)} run(s)" + (" and their mean ± std" if agg else "")
            + f" to {redact(args.tracking_uri)} (experiment {task.name!r}); "
            f"browse them with: mlbench ui"
            + ("" if args.tracking_uri == default_uri else f" --tracking-uri {redact(args.tracking_uri)}"),
        )
    return 0


def refuse_incompatible(method_cls, inputs: frozenset[str], task_name: str) -> None:
    from mlbench.api import incompatibility

    reason = incompatibility(method_cls, inputs, task_name)
    if reason:
        raise UsageError(reason)


def check_tuning_options(args: argparse.Namespace) -> None:
    if args.trials is None:
        given = [opt for opt, on in (("--refit", args.refit), ("--storage", args.storage is not None),
                                     ("--study-name", args.study_name), ("--n-jobs", args.n_jobs != 1),
                                     ("--timeout", args.timeout is not None)) if on]
        if given:
            raise UsageError(f"{', '.join(given)} only apply when tuning: add --trials N")
        return
    if args.trials < 1:
        raise UsageError("--trials must be at least 1")
    if args.n_jobs < 1:
        raise UsageError("--n-jobs must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be positive (seconds)")
    if args.storage is not None:  # a folder or a file that is no database fails here, before any data is read
        from mlbench.runs.tuning.study import check_storage

        check_storage(args.storage)
