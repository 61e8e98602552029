"""Waiting for a test's own HTTP server (``mlflow server``, ``mlbench ui``) to answer."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from typing import Callable


def wait_until_healthy(url: str, proc: subprocess.Popen, log: Callable[[], str], timeout: float = 180) -> None:
    """Poll ``url``/health until it answers 200; fail with the tail of ``log()`` if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the server at {url} did not start within {timeout:.0f} s: {log()[-2000:]}")
        time.sleep(0.5)
