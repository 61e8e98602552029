"""``mlbench list``: every method and task with a one-line description; a broken plugin is a warning row."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlbench.api import MlbenchError
from mlbench.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list methods and tasks")
    options.add_plugin(p)
    p.set_defaults(func=cmd_list, loads_plugins_itself=True)


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
