"""``mlbench data fetch|info``: download and verify a dataset, or describe a task."""

from __future__ import annotations

import argparse

from mlbench.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch a dataset or describe a task")
    p.add_argument("action", choices=["fetch", "info"])
    p.add_argument("task")
    options.add_data_dir(p)
    p.add_argument("--top", type=int, default=10, help="labels to show with info")
    options.add_task_option(p)
    options.add_plugin(p)
    p.set_defaults(func=cmd_data)


def cmd_data(args: argparse.Namespace) -> int:
    from mlbench.data.tasks import check_task_name, get_task

    check_task_name(args.task)
    options.check_data_dir(args.data_dir)
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
