"""Claiming a trial slot and keeping it alive: ``claim_lock`` serialises "count the trials, then create one"
between workers (a file lock beside SQLite and journal files, an advisory lock on PostgreSQL), and
``Heartbeat`` records Optuna's per-trial heartbeat while a trial runs, so that a worker lost on another
machine is found by the storage's grace period.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger("mlbench.runs.tuning")


@contextlib.contextmanager
def claim_lock(storage_url: str, study_name: str, storage: Any) -> Iterator[None]:
    """Serialise "count, then create a trial" between workers so a study never exceeds N trials.

    Home-made because Optuna's ``MaxTrialsCallback`` stops a worker only after its trial ends, so K workers
    can overshoot N by K-1 trials; counting and creating under one lock cannot.
    """
    if "://" not in storage_url or storage_url.startswith("sqlite"):
        path = storage_url.split(":///", 1)[1] if storage_url.startswith("sqlite") else storage_url
        if not path or path == ":memory:":
            yield
            return
        import tempfile

        from filelock import FileLock

        # The file is local to this machine, and so is the lock (kept out of the user's folder).
        key = hashlib.sha256(f"{Path(path).resolve()}\0{study_name}".encode()).hexdigest()[:16]
        with FileLock(str(Path(tempfile.gettempdir()) / f"mlbench-claim-{key}.lock")):
            yield
        return
    if storage_url.startswith("postgresql"):
        import sqlalchemy

        lock_id = int.from_bytes(hashlib.sha256(f"mlbench:{study_name}".encode()).digest()[:8], "big", signed=True)
        with storage.engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
                conn.commit()
        return
    # Other databases: no lock; the slot check after creating a trial still holds the total at N.
    yield


class Heartbeat:
    """Optuna's per-trial heartbeat, for our ask/tell loop (``study.optimize`` runs the same thread).

    Optuna starts its heartbeat thread only inside ``study.optimize`` (no public API for it), and the claim
    lock needs an ask/tell loop, so this thread calls the storage's own ``record_heartbeat`` at its interval.
    """

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._storage = storage
        self._trial_id = trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Heartbeat":
        interval = getattr(self._storage, "get_heartbeat_interval", lambda: None)()
        if interval:
            def beat() -> None:
                while True:
                    try:
                        self._storage.record_heartbeat(self._trial_id)
                    except Exception as exc:  # a missed beat is not worth killing the trial
                        log.info("heartbeat failed: %s", exc)
                    if self._stop.wait(interval):
                        return

            self._thread = threading.Thread(target=beat, daemon=True, name="mlbench-heartbeat")
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
