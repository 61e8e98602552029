"""``mlbench data fetch|info``: download and verify a dataset, or describe a task.

``mlbench data fetch mulan`` fetches and converts the eleven MULAN datasets at once. ``info`` prints the
task's sizes and label statistics; for a task of feature vectors it adds the figures MULAN publishes
(instances, features, labels, label cardinality and density to three decimals, distinct label sets),
computed over every document of the task, which for a built-in MULAN set are its official train + test files.
"""

from __future__ import annotations

import argparse
from typing import Any

from mlbench.api import FEATURES, TEXT, Task, UsageError
from mlbench.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch a dataset or describe a task")
    p.add_argument("action", choices=["fetch", "info"])
    p.add_argument("task", help="a task name or path; for fetch also 'mulan' (the eleven MULAN datasets)")
    options.add_data_dir(p)
    p.add_argument("--top", type=int, default=10, help="labels to show with info")
    options.add_task_option(p)
    options.add_plugin(p)
    p.set_defaults(func=cmd_data)


def _ready(task: Task) -> str:
    return (f"{task.name}: ready ({len(task.train)} train / {len(task.valid)} valid / {len(task.test)} test, "
            f"{task.n_labels} labels, fingerprint {task.fingerprint})")


def cmd_data(args: argparse.Namespace) -> int:
    from mlbench.data.mulan import ensure_converted
    from mlbench.data.mulan_sets import ALL, NAMES
    from mlbench.data.tasks import check_task_name, get_task

    if args.task == ALL:
        options.check_data_dir(args.data_dir)
        if args.action != "fetch":
            raise UsageError(f"'{ALL}' names the eleven MULAN datasets for fetch; give one of them to info "
                             f"({', '.join(NAMES)})")
        ensure_converted(NAMES, args.data_dir)
        for name in NAMES:
            print(_ready(get_task(name, data_dir=args.data_dir)))
        return 0
    check_task_name(args.task)
    options.check_data_dir(args.data_dir)
    task = get_task(args.task, data_dir=args.data_dir)
    if args.action == "fetch":
        print(_ready(task))
        return 0
    lines: dict[str, Any] = dict(task.summary())
    if FEATURES in task.inputs:
        lines.update(feature_statistics(task))
    for k, v in lines.items():
        print(f"{k:<20} {v}")
    import numpy as np

    if TEXT in task.inputs:
        docs_len = [len(t.split()) for t in task.train.texts]
        print(f"{'train_median_words':<20} {int(np.median(docs_len)) if docs_len else 0}")
        print(f"{'train_empty_docs':<20} {sum(1 for t in task.train.texts if not t.strip())}")
    freq = task.label_freq
    top = ", ".join(f"{task.labels[j]} ({freq[j]})" for j in range(min(args.top, task.n_labels)))
    print(f"{'top_labels':<20} {top}")
    rare = int((freq < 10).sum())
    print(f"{'labels_under_10':<20} {rare} (train documents < 10)")
    return 0


def feature_statistics(task: Task) -> dict[str, Any]:
    """MULAN's dataset figures over every document of ``task`` (train + valid + test)."""
    import numpy as np
    import scipy.sparse as sp

    splits = list(task.splits.values())
    Y = sp.vstack([s.Y for s in splits]).tocsr()
    Y.sort_indices()
    n = Y.shape[0]
    cardinality = Y.nnz / n if n else 0.0
    sets = {Y.indices[Y.indptr[i]:Y.indptr[i + 1]].tobytes() for i in range(n)}  # indices sorted per row
    kinds = {"sparse" if sp.issparse(s.X) else "dense" for s in splits}
    return {
        "instances": f"{n} (train + valid + test)",
        "features": f"{task.train.n_features} ({' and '.join(sorted(kinds))})",
        "label_cardinality": f"{cardinality:.3f}",
        "label_density": f"{cardinality / task.n_labels if task.n_labels else 0.0:.3f}",
        "distinct_labelsets": len(sets),
        "empty_labelsets": int((np.diff(Y.indptr) == 0).sum()),
    }
