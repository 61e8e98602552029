"""Task variants that apply to every dataset: ``-shuffled`` and ``-trim<k>``.

A variant changes what a method sees, so its description goes into
``Task.transforms`` and therefore into the fingerprint.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from mlbench.api import MlbenchError, Split, Task

SHUFFLE_SEED = 0
_TRIM = re.compile(r"^trim(\d+)$")


def parse_variant(token: str) -> tuple[str, int]:
    """``"shuffled"`` → ("shuffled", 0); ``"trim10"`` → ("trim", 10)."""
    if token == "shuffled":
        return "shuffled", 0
    m = _TRIM.match(token)
    if m:
        return "trim", int(m.group(1))
    raise MlbenchError(f"unknown task variant {token!r}; variants are 'shuffled' and 'trim<k>' (e.g. trim10)")


def shuffled(task: Task, seed: int = SHUFFLE_SEED) -> Task:
    """Give each training document's label sequence an independent random order.

    Only the order changes (``Y`` is untouched), so a set-based method scores as
    on the base task while a sequence model loses the consistent order it relies
    on. Validation and test keep the canonical order: evaluation is on sets.
    The seed is fixed, so every method and run seed sees the same shuffle.
    """
    rng = np.random.default_rng(seed)
    seqs = tuple(tuple(int(j) for j in rng.permutation(s)) for s in task.train.label_seqs)
    train = replace(task.train, label_seqs=seqs)
    return replace(
        task,
        name=f"{task.name}-shuffled",
        train=train,
        transforms=task.transforms + (f"shuffled(seed={seed})",),
    )


def _trim_split(split: Split, keep: np.ndarray, labels: tuple[str, ...]) -> Split:
    new_index = np.full(split.n_labels, -1, dtype=np.int64)
    new_index[keep] = np.arange(len(keep))
    seqs = [tuple(int(new_index[j]) for j in s if new_index[j] >= 0) for s in split.label_seqs]
    rows = [i for i, s in enumerate(seqs) if s]
    return Split.build(
        split.name,
        [split.ids[i] for i in rows],
        [split.texts[i] for i in rows],
        [seqs[i] for i in rows],
        labels,
    )


def trimmed(task: Task, k: int) -> Task:
    """Remove the ``k`` most frequent training labels from the label space.

    Documents left with no label are dropped from every split (they would be
    trivially right for a model that predicts nothing, and wrong in 0/1 loss
    for one that predicts anything): the choice the paper's Figure 1 implies.
    """
    if k < 0 or k >= task.n_labels:
        raise MlbenchError(f"trim{k}: k must be between 0 and {task.n_labels - 1} for task {task.name!r}")
    if k == 0:
        return replace(task, name=f"{task.name}-trim0", transforms=task.transforms + ("trim(0)",))
    # task.labels is frequency-ordered, so the k most frequent are the first k columns.
    keep = np.arange(k, task.n_labels)
    labels = tuple(task.labels[j] for j in keep)
    return replace(
        task,
        name=f"{task.name}-trim{k}",
        labels=labels,
        train=_trim_split(task.train, keep, labels),
        valid=_trim_split(task.valid, keep, labels),
        test=_trim_split(task.test, keep, labels),
        transforms=task.transforms + (f"trim({k})",),
    )


def apply_variant(task: Task, token: str) -> Task:
    kind, k = parse_variant(token)
    return shuffled(task) if kind == "shuffled" else trimmed(task, k)
