"""Task variants, the one place they are named, parsed and built: ``-shuffled`` and ``-trim<k>``.

A task name is a dataset (registered, or a path to the user's files) followed by variants, e.g.
``reuters-trim10-shuffled``: :func:`split_task_name` splits a registered name, :func:`check_variants`
rejects malformed or redundant ones before anything loads, :func:`apply_variant` builds a variant on a
loaded task, and :func:`trim_level` reads ``k`` back from a name (the reports' Figure 1). A variant
changes what a method sees, so its description goes into ``Task.transforms`` and therefore into the
fingerprint.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from mlbench.api import MlbenchError, Split, Task, UnknownNameError

SHUFFLE_SEED = 0
_TRIM = re.compile(r"^trim(\d+)$")
_TRIM_TOKEN = re.compile(r"^trim([1-9][0-9]*)$")
_TRIMMED_NAME = re.compile(r"^(?P<base>.+)-trim(?P<k>[1-9][0-9]*)$")
VARIANTS_HELP = "variants are -shuffled and -trim<k> with k >= 1, each at most once (e.g. reuters-shuffled, reuters-trim10)"


def parse_variant(token: str) -> tuple[str, int]:
    """``"shuffled"`` → ("shuffled", 0); ``"trim10"`` → ("trim", 10)."""
    if token == "shuffled":
        return "shuffled", 0
    m = _TRIM.match(token)
    if m:
        return "trim", int(m.group(1))
    raise UnknownNameError(f"unknown task variant {token!r}; variants are 'shuffled' and 'trim<k>' (e.g. trim10)")


def split_task_name(name: str, datasets: list[str]) -> tuple[str, list[str]]:
    """``"rcv1-trim10-shuffled"`` → ("rcv1", ["trim10", "shuffled"]).

    The longest registered dataset name that prefixes ``name`` wins, so a
    plugin dataset may itself contain hyphens.
    """
    for ds in sorted(datasets, key=len, reverse=True):
        if name == ds:
            return ds, []
        if name.startswith(ds + "-"):
            return ds, name[len(ds) + 1 :].split("-")
    raise UnknownNameError(
        f"unknown task {name!r}; datasets: {', '.join(sorted(datasets)) or 'none'} "
        "(add -shuffled and/or -trim<k>, e.g. reuters-shuffled, reuters-trim10)"
    )


def check_variants(name: str, variants: list[str]) -> None:
    """Reject a malformed or redundant variant list of task ``name`` (exit status 2), before any load.

    Each spelling of a task must be its only one, since the name goes into run tags and report
    tables: ``trim0`` (nothing trimmed: the base task), ``trim05`` (``trim5``), a variant given
    twice (``-shuffled-shuffled``) or two trims (``-trim10-trim5``) are rejected, not read as new tasks.
    """
    seen: dict[str, str] = {}
    rest = list(variants)
    while rest:
        token = rest.pop(0)
        if token == "shuffled":
            kind = "shuffled"
        elif _TRIM_TOKEN.match(token):
            kind = "trim"
        elif token == "trim" and rest and rest[0].isdigit():  # reuters-trim-5
            raise UnknownNameError(f"task {name!r}: malformed variant 'trim-{rest[0]}'; {VARIANTS_HELP}")
        elif re.fullmatch(r"trim0+", token):
            raise UnknownNameError(f"task {name!r}: {token} trims nothing (use the base task); {VARIANTS_HELP}")
        elif re.fullmatch(r"trim0[0-9]+", token):
            raise UnknownNameError(f"task {name!r}: write {token} as trim{int(token[4:])}; {VARIANTS_HELP}")
        else:
            raise UnknownNameError(f"task {name!r}: unknown task variant {token!r}; {VARIANTS_HELP}")
        if kind in seen:
            raise UnknownNameError(f"task {name!r}: {seen[kind]} and {token} are both given; {VARIANTS_HELP}")
        seen[kind] = token


def trim_level(task_name: str, base_task: str) -> int | None:
    """``k`` when ``task_name`` is ``base_task`` trimmed by ``k`` (0 for ``base_task`` itself), else None."""
    if task_name == base_task:
        return 0
    m = _TRIMMED_NAME.match(task_name)
    return int(m.group("k")) if m and m.group("base") == base_task else None


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
    kept = split.subset(rows)
    return Split.build(split.name, kept.ids, kept.texts, [seqs[i] for i in rows], labels, X=kept.X)


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
    """``task`` with one variant token (``shuffled``, ``trim<k>``) applied."""
    kind, k = parse_variant(token)
    return shuffled(task) if kind == "shuffled" else trimmed(task, k)
