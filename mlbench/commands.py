"""The commands of the ``mlbench`` command line: what each subcommand does once its arguments are parsed.

This module owns the ``cmd_*`` functions (``list``, ``run``, ``data``, ``check``,
``bench``, ``report``, ``compare``, ``ui``) and the small helpers they share
(``--param`` and ``--task-option`` parsing, plugin loading, the tracker, the
default tracking URI); :mod:`mlbench.cli` builds the parser and dispatches to
them. Heavy libraries (torch, MLflow, Optuna) are imported inside the commands
that need them, so importing this module keeps ``mlbench --help`` fast.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from mlbench.api import MlbenchError, UsageError
from mlbench.redaction import redact

def parse_value(text: str) -> Any:
    """``--param`` values: JSON literals (numbers, true/false/null, lists) else plain strings."""
    aliases = {"True": True, "False": False, "None": None}
    if text in aliases:
        return aliases[text]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param expects key=value, got {item!r}")
        params[key.strip()] = parse_value(value.strip())
    return params


def _apply_task_options(args: argparse.Namespace) -> None:
    """``--task-option k=v``: column names etc. of tasks read from files, for every path task this command loads."""
    items = getattr(args, "task_option", None)
    if not items:
        return
    from mlbench.data.files import set_session_options

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--task-option expects key=value, got {item!r}")
        options[key.strip()] = value
    try:
        set_session_options(options)
    except MlbenchError as exc:
        raise UsageError(str(exc)) from exc


def _canonical_task(name: str) -> str:
    from mlbench.data.files import canonical_task_name

    return canonical_task_name(name)


def _load_plugins(args: argparse.Namespace) -> None:
    from mlbench.registry import load_plugin_file

    for path in getattr(args, "plugin", None) or []:
        load_plugin_file(path)


def _default_uri() -> str:
    from mlbench.tracking import DEFAULT_TRACKING_URI

    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


# ------------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace) -> int:
    from mlbench.registry import BUILTIN_DIST, describe_all, load_plugin_file

    # a plugin file that fails to import is a warning row here, as a broken installed plugin is
    broken: list[tuple[str, str]] = []
    for path in getattr(args, "plugin", None) or []:
        try:
            load_plugin_file(path)
        except MlbenchError as exc:
            broken.append((str(path), str(exc)))
    rows, warnings = describe_all()
    for kind in ("method", "task"):
        print(f"{kind}s:")
        if kind == "method":
            for path, error in broken:
                print(f"  {Path(path).name:<14} WARNING: {error}  [plugin file]")
                warnings.append(error)
        for r in (r for r in rows if r.kind == kind):
            origin = "" if r.source == BUILTIN_DIST else f"  [{r.source}]"
            text = r.description if r.status == "ok" else r.status
            print(f"  {r.name:<14} {text}{origin}")
        if kind == "task":
            print("  (every task also comes as <task>-shuffled and <task>-trim<k>, e.g. reuters-shuffled, reuters-trim10)")
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def _tracker(args: argparse.Namespace):
    from mlbench.tracking import Tracker

    return Tracker(args.tracking_uri, artifact_dir=args.artifact_dir)


def cmd_run(args: argparse.Namespace) -> int:
    from mlbench.registry import get_method, get_task
    from mlbench.runner import format_summary, log_aggregate, resolve_device, run_once

    from mlbench.api import validate_params
    from mlbench.registry import check_task_name

    method_cls = get_method(args.method)
    params = parse_params(args.param)
    validate_params(method_cls, args.preset, params)  # types and ranges, before loading any data
    method_cls(preset=args.preset, **params)  # the method's own cross-parameter checks
    _check_seeds(args.seeds)
    _check_tuning_options(args)
    check_task_name(args.task)
    _check_data_dir(args.data_dir)
    device = resolve_device(args.device, method_cls)
    default_uri = _default_uri()  # before MLflow exports the tracker's URI to the environment
    tracker = None if args.no_tracking else _tracker(args)  # a bad store fails here, before any data is read
    task = get_task(args.task, data_dir=args.data_dir)
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
        from mlbench.tuning import DEFAULT_STORAGE, StudyPending, TuneSpec, tune

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


def _check_tuning_options(args: argparse.Namespace) -> None:
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


def _check_seeds(seeds: Sequence[int] | None) -> None:
    for seed in seeds or ():
        if not 0 <= seed < 2**32:  # numpy's generators take seeds in [0, 2**32)
            raise UsageError(f"--seeds: {seed} is not a seed; seeds are integers in [0, {2**32 - 1}]")
    if seeds and len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds lists a seed twice: {' '.join(map(str, seeds))}")


def _check_data_dir(data_dir: Path | None) -> None:
    if data_dir is not None and data_dir.exists() and not data_dir.is_dir():
        raise UsageError(f"--data-dir {data_dir} is a file, not a folder")


def cmd_data(args: argparse.Namespace) -> int:
    from mlbench.registry import check_task_name, get_task

    check_task_name(args.task)
    _check_data_dir(args.data_dir)
    task = get_task(args.task, data_dir=args.data_dir)
    if args.action == "fetch":
        print(f"{task.name}: ready ({len(task.train)} train / {len(task.valid)} valid / {len(task.test)} test, "
              f"{task.n_labels} labels, fingerprint {task.fingerprint})")
        return 0
    info = task.summary()
    freq = task.label_freq
    for k, v in info.items():
        print(f"{k:<20} {v}")
    docs_len = [len(t.split()) for t in task.train.texts]
    import numpy as np

    print(f"{'train_median_words':<20} {int(np.median(docs_len)) if docs_len else 0}")
    print(f"{'train_empty_docs':<20} {sum(1 for t in task.train.texts if not t.strip())}")
    top = ", ".join(f"{task.labels[j]} ({freq[j]})" for j in range(min(args.top, task.n_labels)))
    print(f"{'top_labels':<20} {top}")
    rare = int((freq < 10).sum())
    print(f"{'labels_under_10':<20} {rare} (train documents < 10)")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from mlbench.contract import run_contract
    from mlbench.registry import get_method, method_origin

    from mlbench.api import validate_params

    method_cls = get_method(args.method)
    validate_params(method_cls, None, parse_params(args.param))
    print(f"checking method {args.method!r} from {method_origin(args.method)} against the mlbench contract "
          "(tiny synthetic task)")

    def show(r) -> None:
        print(f"  {r.status}  {r.name}" + (f": {r.detail}" if r.detail else ""), flush=True)

    results = run_contract(method_cls, params=parse_params(args.param), on_result=show)
    failed = sum(not r.passed for r in results)
    skipped = sum(r.skipped for r in results)
    print(f"{len(results) - failed - skipped} passed, {skipped} skipped, {failed} failed"
          + (f": {args.method!r} does not meet the contract" if failed else ""))
    return 1 if failed else 0


def cmd_bench(args: argparse.Namespace) -> int:
    from mlbench.bench import load_suite, run_suite, validate_suite

    suite = load_suite(args.suite)
    if args.seeds:
        suite.seeds = list(args.seeds)
    if args.methods:
        suite.methods = {m: suite.methods.get(m, {}) for m in args.methods}
    if args.tasks:
        suite.tasks = list(args.tasks)
    suite.tasks = [_canonical_task(t) for t in suite.tasks]  # a path task is stored under one name
    if args.preset:
        suite.preset = args.preset
    validate_suite(suite)  # every method, parameter and task name before the store or any data is opened
    cells = suite.cells()
    print(f"suite {suite.name}: {len(suite.methods)} methods x {len(suite.tasks)} tasks x {len(suite.seeds)} seeds "
          f"= {len(cells)} cells (preset {suite.preset})", file=sys.stderr)
    outcomes = run_suite(suite, _tracker(args), device=args.device, data_dir=args.data_dir, progress=not args.quiet,
                         dry_run=args.dry_run)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed", "pending")}
    if args.dry_run:
        print(f"{counts['pending']} to run, {counts['skipped']} already complete, {counts['failed']} failed")
        return 1 if counts["failed"] else 0
    print(f"{counts['done']} run, {counts['skipped']} already complete, {counts['failed']} failed")
    for o in outcomes:
        if o.status == "failed":
            print(f"  failed: {o.method} on {o.task} seed {o.seed}: {o.detail}")
    return 1 if counts["failed"] else 0


def cmd_report(args: argparse.Namespace) -> int:
    from mlbench.reporting import render_report, write_report

    if args.from_dir:
        if args.task or args.config or args.tasks or args.merge:
            raise UsageError("--from renders a bundle as it was written: --task, --tasks, --config and --merge "
                             "do not apply")
        readme = render_report(Path(args.from_dir), Path(args.out) if args.out else None)
        print(f"wrote {readme} and its figures from the bundle in {args.from_dir}")
        return 0
    for folder in args.merge:
        if not (Path(folder) / "runs.csv").is_file() or not (Path(folder) / "bundle.json").is_file():
            raise UsageError(f"--merge {folder}: no report bundle there (runs.csv and bundle.json)")
    if args.tasks:
        return _report_across_tasks(args)
    if not args.task:
        raise UsageError("report needs --task T (from the store), --tasks T1,T2,... (a comparison across tasks) "
                         "or --from DIR (from a bundle)")
    args.task = _canonical_task(args.task)
    out_dir = Path(args.out) if args.out else Path("reports") / args.task.lstrip("/")
    command = "mlbench report --task " + args.task + (f" --out {args.out}" if args.out else "")
    if args.config:
        command += f" --config {args.config}"
    command += "".join(f" --merge {m}" for m in args.merge)
    if args.command_note:
        command = args.command_note
    readme = write_report(
        _tracker(args), out_dir, args.task, command=command, data_dir=args.data_dir, n_resamples=args.resamples,
        config=args.config, merge=[Path(m) for m in args.merge],
    )
    print(f"wrote {readme}, its figures and its evidence (runs.csv, predictions/, tasks/)")
    return 0


def _report_across_tasks(args: argparse.Namespace) -> int:
    from mlbench.crosstask import write_cross_task_report
    from mlbench.reporting import collect_runs

    if args.task:
        raise UsageError("give --task or --tasks, not both")
    tasks = [_canonical_task(t.strip()) for t in args.tasks.split(",") if t.strip()]
    if len(tasks) < 2:
        raise UsageError("--tasks needs at least two comma-separated tasks")
    out_dir = Path(args.out) if args.out else Path("reports") / "across-tasks"
    command = args.command_note or f"mlbench report --tasks {','.join(tasks)} --metric {args.metric}" + (
        f" --out {args.out}" if args.out else "") + "".join(f" --merge {m}" for m in args.merge)
    records = collect_runs(_tracker(args), tasks)
    if args.merge:  # the committed bundles' runs join the store's; a store run of the same cell wins
        from mlbench.bundle import merged_records
        from mlbench.records import label_rows

        records, _ = merged_records(records, [Path(m) for m in args.merge], tasks, scratch=None)  # metrics only
        for task in tasks:  # a bundle's runs carry no start time, so "the newest split" cannot choose between them
            splits = sorted({r.fingerprint for r in records if r.task == task})
            if len(splits) > 1:
                raise MlbenchError(f"task {task}: the store and the merged folders hold runs on {len(splits)} "
                                   f"different splits (fingerprints {', '.join(splits)}); compare them separately")
        records = label_rows(records)
    readme = write_cross_task_report(records, tasks, out_dir, metric=args.metric, command=command)
    print(f"wrote {readme}, its CSV and LaTeX tables and cd_diagram.png")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from mlbench.registry import get_task
    from mlbench.reporting import run_predictions
    from mlbench.stats import paired_bootstrap

    id_lists = []
    for arg in (args.run_a, args.run_b):
        ids = [r for r in (x.strip() for x in arg.split(",")) if r]
        if not ids:
            raise UsageError(f"no run id in {arg!r}")
        for run_id in ids:  # before the store is opened: a typo fails at once
            if not RUN_ID.fullmatch(run_id):
                raise UsageError(f"{run_id!r} is not an MLflow run id (32 hexadecimal digits, as `mlbench run` prints)")
        id_lists.append(ids)
    tracker = _tracker(args)
    sides = [[(run_id, *run_predictions(tracker, run_id)) for run_id in ids] for ids in id_lists]
    splits = {(task, fp) for side in sides for _, task, fp, _, _ in side}
    if len(splits) > 1:
        listed = ", ".join(f"{t} {f}" for t, f in sorted(splits))
        raise UsageError(f"the runs are on different tasks or splits ({listed}): not comparable")
    ((task_name, fp),) = splits
    task = get_task(task_name, data_dir=args.data_dir)
    if task.fingerprint != fp:
        raise MlbenchError(f"task {task_name} now has fingerprint {task.fingerprint}, the runs used {fp}")
    preds = [[pred for *_, pred, _ in side] for side in sides]
    res = paired_bootstrap(task.test.Y, preds[0], preds[1], n_resamples=args.resamples, seed=args.seed)
    for label, side in zip("AB", sides):
        names = sorted({name for *_, name in side})
        runs = ", ".join(run_id for run_id, *_ in side)
        mean = f", mean of {len(side)} runs" if len(side) > 1 else ""
        print(f"{label} = {'/'.join(names)} ({runs}){mean}")
    print(f"task {task_name}, {len(task.test)} test documents, {args.resamples} paired resamples")
    print(f"{'metric':<16}{'A':>9}{'B':>9}{'A - B':>10}   95% CI               p")
    for r in res.values():
        flag = "  significant" if r.significant else ""
        print(f"{r.metric:<16}{r.a:>9.4f}{r.b:>9.4f}{r.diff:>+10.4f}   [{r.low:+.4f}, {r.high:+.4f}]  {r.p_value:.3f}{flag}")
    return 0


#: MLflow's run ids: a uuid4 without dashes.
RUN_ID = re.compile(r"[0-9a-f]{32}")


def cmd_ui(args: argparse.Namespace) -> int:
    import signal
    import socket

    exe = shutil.which("mlflow")
    cmd = [exe] if exe else [sys.executable, "-m", "mlflow"]
    cmd += [
        "server",
        "--backend-store-uri",
        args.tracking_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(args.port),
    ]
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be in 1-65535, got {args.port}")
    with socket.socket() as probe:  # a port already held fails here, not in the server's log
        try:
            probe.bind(("127.0.0.1", args.port))
        except OSError as exc:
            raise UsageError(f"port {args.port} on 127.0.0.1 is in use ({exc.strerror}); pick another with --port") from exc
    print(f"MLflow UI on http://127.0.0.1:{args.port} over {redact(args.tracking_uri)} (Ctrl-C to stop)",
          file=sys.stderr)
    # The server forks uvicorn workers and huey consumers: in a session (process group) of its own, the
    # whole group is ended when mlbench is, however mlbench is stopped (Ctrl-C, TERM, HUP).
    server = subprocess.Popen(cmd, start_new_session=True)

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return server.wait()
    except KeyboardInterrupt:
        _end_group(server)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server.poll() is None:
            _end_group(server)


def _end_group(proc: "subprocess.Popen[bytes]", grace_s: float = 10.0) -> None:
    """TERM a child's process group, then KILL whatever of it is left after ``grace_s``."""
    import signal
    import time

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            proc.poll()
            try:
                os.killpg(proc.pid, 0)  # anyone of the group still alive?
            except ProcessLookupError:
                return
            time.sleep(0.1)
