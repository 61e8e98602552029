"""The console entry point: the parser assembled from the command modules, and ``main``.

``main`` owns the error format: one ``mlbench: error:`` line, exit 2 for usage errors (an unknown name, a
bad option or parameter) and 1 for everything else a user must fix (missing data, a failed store);
Ctrl-C is one line and exit 130.
"""

from __future__ import annotations

import sys

try:  # Ctrl-C while the libraries load: a line, not a traceback
    import argparse
    import logging
    import os
    from typing import NoReturn, Sequence

    from mlbench import __version__
    from mlbench.api import MlbenchError, UsageError
    from mlbench.cli import bench, check, compare, data, listing, options, report, run, ui
    from mlbench.api import UnknownNameError
    from mlbench.runs.redaction import install_log_redaction, redact, remember
except KeyboardInterrupt:
    print("mlbench: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

#: The command modules, in the order ``mlbench --help`` lists them.
COMMANDS = (listing, run, data, check, bench, report, compare, ui)
#: Loggers whose INFO lines describe MLflow's own store upkeep (creating and upgrading tables).
QUIET_LOGGERS = ("mlflow.store.db.utils", "alembic")


class OneLineParser(argparse.ArgumentParser):
    """argparse with the CLI's error format: one ``mlbench: error:`` line (exit 2), not the usage block."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(2, f"mlbench: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="mlbench", description="Benchmark harness for multi-label classification.")
    parser.add_argument("--version", action="version", version=f"mlbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if hasattr(args, "tracking_uri") and args.tracking_uri is None:
            args.tracking_uri = options.default_uri()  # imports the tracking module (numpy): Ctrl-C may land here
    except KeyboardInterrupt:
        print("mlbench: interrupted", file=sys.stderr)
        return 130
    # reports and suites read artifacts back (predictions, saved models): no progress bar per file
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    install_log_redaction()
    for uri in (getattr(args, "tracking_uri", None), getattr(args, "storage", None)):
        remember(uri)  # masked as spelt, and its password wherever it appears, from the first message on
    if not args.verbose:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        if not getattr(args, "loads_plugins_itself", False):  # list shows a broken plugin file as a row instead
            options.load_plugins(args)
        options.apply_task_options(args)
        options.apply_threads(args)
        return int(args.func(args) or 0)
    except (UnknownNameError, UsageError) as exc:
        print(f"mlbench: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except MlbenchError as exc:
        print(f"mlbench: error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mlbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (``mlbench list | head``): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
