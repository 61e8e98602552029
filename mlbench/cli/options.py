"""Options several commands share, declared once, and the helpers that read them.

A command module calls the ``add_*`` functions for the options it takes; the values are then read by the
helpers below (``parse_params`` for ``--param``, :func:`make_tracker` for ``--tracking-uri`` and
``--artifact-dir``, :func:`apply_task_options` for ``--task-option``, :func:`load_plugins` for ``--plugin``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Sequence

from mlbench.api import MlbenchError, UsageError


def add_tracking(p: argparse.ArgumentParser, artifacts: bool = True) -> None:
    """``--tracking-uri`` (and ``--artifact-dir`` for commands that write or read artifacts)."""
    # default filled in by main(): reading it imports mlbench.runs.tracking (numpy, scipy), too slow for --help
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow store or server (default: sqlite:///mlflow.db in the working directory)")
    if artifacts:
        p.add_argument("--artifact-dir", default="mlartifacts",
                       help="artifact folder of a local store (default ./mlartifacts)")


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help="the dataset's folder (default: $MLBENCH_DATA/<dataset> or ~/.cache/mlbench/<dataset>)")


def add_plugin(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", action="append", metavar="FILE.py",
                   help="register the methods/tasks defined in a local Python file (repeatable)")


def add_task_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task-option", action="append", metavar="KEY=VALUE",
                   help="for a task read from files (--task PATH): text=, labels=, id=, split= column names, "
                        "label_sep= (default whitespace) (repeatable)")


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def add_params(p: argparse.ArgumentParser, what: str = "override a hyperparameter (repeatable)") -> None:
    p.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE", help=what)


def add_task_and_store(p: argparse.ArgumentParser) -> None:
    """What every command that trains takes: the data folder, the store, quiet, torch threads, file-task
    options, plugins."""
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch threads of each run (default 1, or $MLBENCH_TORCH_THREADS; a neural number is "
                        "reproduced with the thread count it ran with, which every run records)")
    add_data_dir(p)
    add_tracking(p)
    add_quiet(p)
    add_task_option(p)
    add_plugin(p)


def apply_threads(args: argparse.Namespace) -> None:
    """``--threads N``: the torch thread count of every run this command starts, worker processes included
    (they inherit it through the environment)."""
    threads = getattr(args, "threads", None)
    if threads is None:
        return
    if threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    from mlbench.runs.provenance import THREADS_ENV

    os.environ[THREADS_ENV] = str(threads)


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


def apply_task_options(args: argparse.Namespace) -> None:
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


def canonical_task(name: str) -> str:
    from mlbench.data.files import canonical_task_name

    return canonical_task_name(name)


def load_plugins(args: argparse.Namespace) -> None:
    from mlbench.registry import load_plugin_file

    for path in getattr(args, "plugin", None) or []:
        load_plugin_file(path)


def default_uri() -> str:
    from mlbench.runs.tracking import DEFAULT_TRACKING_URI

    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


def make_tracker(args: argparse.Namespace):
    from mlbench.runs.tracking import Tracker

    return Tracker(args.tracking_uri, artifact_dir=args.artifact_dir)


def check_seeds(seeds: Sequence[int] | None) -> None:
    for seed in seeds or ():
        if not 0 <= seed < 2**32:  # numpy's generators take seeds in [0, 2**32)
            raise UsageError(f"--seeds: {seed} is not a seed; seeds are integers in [0, {2**32 - 1}]")
    if seeds and len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds lists a seed twice: {' '.join(map(str, seeds))}")


def check_data_dir(data_dir: Path | None) -> None:
    if data_dir is not None and data_dir.exists() and not data_dir.is_dir():
        raise UsageError(f"--data-dir {data_dir} is a file, not a folder")
