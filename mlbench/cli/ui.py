"""``mlbench ui``: the MLflow UI on 127.0.0.1 over the same store, stopped with every process it started."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from typing import Any

from mlbench.api import UsageError
from mlbench.cli import options
from mlbench.runs.redaction import redact


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="open the MLflow UI on 127.0.0.1 over the same store")
    options.add_tracking(p, artifacts=False)
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=cmd_ui)


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
    from mlbench.runs.tracking import Tracker

    # opened (a fresh one created whole) here: a store that cannot open is one line, not the server's traceback
    Tracker(args.tracking_uri)
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
        end_group(server)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server.poll() is None:
            end_group(server)


def end_group(proc: "subprocess.Popen[bytes]", grace_s: float = 10.0) -> None:
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
