"""``mlbench compare RUN_A RUN_B``: paired bootstrap of two runs' (or two groups of runs') test predictions."""

from __future__ import annotations

import argparse
import re

from mlbench.api import MlbenchError, UsageError
from mlbench.cli import options

#: MLflow's run ids: a uuid4 without dashes.
RUN_ID = re.compile(r"[0-9a-f]{32}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="paired bootstrap of two runs' test predictions")
    p.add_argument("run_a", help="a run id, or several separated by commas (e.g. one per seed): their mean is compared")
    p.add_argument("run_b", help="the same for the other side")
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    options.add_data_dir(p)
    options.add_tracking(p)
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from mlbench.data.tasks import get_task
    from mlbench.reports.bootstrap import paired_bootstrap

    id_lists = []
    for arg in (args.run_a, args.run_b):
        ids = [r for r in (x.strip() for x in arg.split(",")) if r]
        if not ids:
            raise UsageError(f"no run id in {arg!r}")
        for run_id in ids:  # before the store is opened: a typo fails at once
            if not RUN_ID.fullmatch(run_id):
                raise UsageError(f"{run_id!r} is not an MLflow run id (32 hexadecimal digits, as `mlbench run` prints)")
        id_lists.append(ids)
    tracker = options.make_tracker(args)
    sides = [[(run_id, *stored_test_predictions(tracker, run_id)) for run_id in ids] for ids in id_lists]
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


def stored_test_predictions(tracker, run_id: str) -> tuple[str, str, object, str]:
    """(task, fingerprint, test predictions, method) of one run of the store."""
    run = tracker.get_run(run_id)
    if run is None:
        raise MlbenchError(f"no run {run_id!r} in {tracker.tracking_uri}")
    tags = run.data.tags
    if "mlbench.task" not in tags:
        raise MlbenchError(f"run {run_id} was not logged by mlbench")
    _, pred, _ = tracker.download_predictions(run_id)
    return tags["mlbench.task"], tags.get("mlbench.fingerprint", ""), pred, tags.get("mlbench.method", "?")
