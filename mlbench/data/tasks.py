"""Task names to tasks: a registered dataset or a path to the user's files, followed by variants.

:func:`check_task_name` validates a name without loading anything (commands call it before any data is
read); :func:`get_task` loads the dataset through its plugin (or reads the files) and applies the variants
(:mod:`mlbench.data.variants`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlbench.api import FEATURES, TEXT, Task
from mlbench.data.files import load_path_task
from mlbench.data.variants import apply_variant, check_variants, parse_variant, split_task_name
from mlbench.registry import dataset_names, get_dataset


def check_task_name(name: str) -> None:
    """Raise the registry's unknown-name error unless ``name`` is a registered dataset with well-formed variants.

    Loads nothing but the dataset list. A name that is a path (a task read from files) is left to
    its reader.
    """
    if os.sep in name or Path(name).exists():
        return
    _, variants = split_task_name(name, dataset_names())
    check_variants(name, variants)


def task_inputs(name: str) -> frozenset[str]:
    """What task ``name``'s documents can come as, known without reading data: the dataset's declared
    ``inputs``; both for a path (its files decide)."""
    if os.sep in name or Path(name).exists():
        return frozenset({TEXT, FEATURES})
    ds_name, _ = split_task_name(name, dataset_names())
    return get_dataset(ds_name).inputs


def get_task(name: str, data_dir: Path | None = None, seed: int = 0, **dataset_kwargs: Any) -> Task:
    """Load a task by name: a dataset followed by variants, e.g. ``reuters-shuffled``."""
    # A path (``./folder``, ``data.jsonl``, with -shuffled/-trim<k>) is a task read from the user's files.
    file_task = load_path_task(name, **dataset_kwargs)
    if file_task is not None:
        return file_task
    ds_name, variants = split_task_name(name, dataset_names())
    check_variants(name, variants)  # validate every token before any expensive load
    for v in variants:
        parse_variant(v)
    task = get_dataset(ds_name)(**dataset_kwargs).load(data_dir=data_dir, seed=seed)
    for v in variants:
        task = apply_variant(task, v)
    return task
