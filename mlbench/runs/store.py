"""Opening an MLflow store safely: bounded retries, one-line errors, and no race on a fresh store.

:class:`~mlbench.runs.tracking.Tracker` calls through :func:`retry_when_locked` (several processes writing one
SQLite file), turns a failing store into :class:`TrackingStoreError` (one line naming the store, its password
masked), and opens a fresh local store under :func:`creation_lock`, so two processes never run MLflow's
schema migrations on the same new file at once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from mlbench.api import MlbenchError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Attempts of one store call that meets a busy SQLite file (several worker processes writing at once).
LOCK_RETRIES = 12


def is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


def retry_when_locked(fn: Callable[..., T]) -> Callable[..., T]:
    """Retry a store call that failed because another process held the SQLite write lock.

    MLflow already sets a busy timeout, but SQLite answers "database is locked"
    at once (no waiting) when two transactions both try to upgrade to writing;
    backing off and retrying is then the documented remedy.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        delay = 0.05
        for attempt in range(LOCK_RETRIES):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not is_lock_error(exc) or attempt == LOCK_RETRIES - 1:
                    if isinstance(exc, store_error_types()):
                        raise TrackingStoreError.of(getattr(args[0], "tracking_uri", "?"), exc) from exc
                    raise
                log.info("MLflow store busy (%s); retrying in %.2f s", exc, delay)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 3.0)
        raise AssertionError("unreachable")

    return wrapper


#: MLflow's own HTTP retry settings, unless set in the environment: a dead tracking server fails a call after
#: 3 retries 0 + 2 + 4 s apart, each request waiting at most 10 s (MLflow's defaults: 7 retries, 120 s).
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
#: Quiet MLflow: no "View run ... at" lines per run, no INFO lines (about creating tables, for one).
QUIET_DEFAULTS = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true", "MLFLOW_LOGGING_LEVEL": "WARNING"}


def configure_mlflow_environment() -> None:
    """Bounded retries and quiet output, before MLflow is imported; a variable already set wins."""
    for key, value in {**HTTP_RETRY_DEFAULTS, **QUIET_DEFAULTS}.items():
        os.environ.setdefault(key, value)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # logs a traceback for every database error it then raises; mlbench reports the error in one line
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


class TrackingStoreError(MlbenchError):
    """The MLflow store failed (server unreachable, file read-only or missing, disk full): not the method's fault."""

    @classmethod
    def of(cls, uri: str, exc: BaseException) -> "TrackingStoreError":
        from mlbench.runs.redaction import redact

        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        return cls(f"tracking store {redact(uri)}: {type(exc).__name__}: {redact(detail)}; check that it is "
                   f"reachable and writable, then rerun the same command (finished work is kept)")


@contextlib.contextmanager
def creation_lock(uri: str) -> Iterator[None]:
    """For a local SQLite store: one process at a time opens (and maybe creates) it, so that two processes
    never run MLflow's schema migrations on the same fresh file at once (a lock file kept in the temp folder)."""
    prefix = "sqlite:///"
    path = uri[len(prefix):].partition("?")[0] if uri.startswith(prefix) else ""
    if not path or ":memory:" in path:
        yield
        return
    from filelock import FileLock

    key = hashlib.sha256(path.encode()).hexdigest()[:16]
    with FileLock(str(Path(tempfile.gettempdir()) / f"mlbench-store-{key}.lock")):
        yield


#: What a process sees while another one creates the same fresh SQLite store.
SCHEMA_RACE = ("duplicate column", "already exists", "database is locked", "unique constraint", "no such table",
                "alembic_version")


@functools.lru_cache(maxsize=1)
def store_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions of a store call that mean the store failed (turned into ``TrackingStoreError``)."""
    from mlflow.exceptions import MlflowException

    types: list[type[BaseException]] = [MlflowException, OSError]
    for module, name in (("sqlalchemy.exc", "SQLAlchemyError"), ("requests", "RequestException")):
        try:
            types.append(getattr(__import__(module, fromlist=[name]), name))
        except ImportError:  # pragma: no cover - both come with MLflow
            pass
    return tuple(types)


def absolute_sqlite_uri(uri: str) -> str:
    """``sqlite:///mlflow.db`` made absolute: MLflow caches one store per URI string for the whole
    process, so a relative path would keep pointing into the first working directory."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and ":memory:" not in uri:
        path, sep, query = uri[len(prefix):].partition("?")
        return prefix + str(Path(path).resolve()) + sep + query
    return uri
