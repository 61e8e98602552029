"""Opening a store safely: bounded retries, one-line errors, a fresh store made whole or not at all.

:class:`~mlbench.runs.tracking.Tracker` calls through :func:`retry_when_locked` (several processes writing one
SQLite file), turns a failing store into :class:`TrackingStoreError` (one line naming the store, its password
masked), and opens a local store under :func:`creation_lock`, so two processes never run MLflow's schema
migrations on the same new file at once.

A fresh SQLite store (MLflow's or Optuna's) is built in a temporary file beside its name and moved into
place once its schema is complete (:func:`create_sqlite_atomically`): MLflow's migrations take a second or
more and are not one transaction, so a Ctrl-C in the middle used to leave a file that no later command could
open. A store left that way by an older mlbench, holding no run, is rebuilt the same way
(:func:`holds_no_runs`). A URI that cannot be a database fails at once (:func:`check_sqlite_file`,
:func:`probe_server_database`) instead of after the drivers' retries (MLflow retries a failing engine for
about 100 s).
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

from mlbench.api import MlbenchError, UsageError

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
        if is_schema_error(exc):  # rerunning cannot help: the file's tables are half-made or another version's
            return cls(f"tracking store {redact(uri)}: {type(exc).__name__}: {redact(detail)}; its tables are "
                       f"incomplete (an interrupted creation or upgrade): `mlflow db upgrade` may repair it, or "
                       f"move the file aside")
        return cls(f"tracking store {redact(uri)}: {type(exc).__name__}: {redact(detail)}; check that it is "
                   f"reachable and writable, then rerun the same command (finished work is kept)")


def sqlite_path(uri: str) -> Path | None:
    """The file of a local SQLite URI (``sqlite:///path``, query removed), or None (another kind, or in memory)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = uri[len(prefix):].partition("?")[0]
    return None if not path or ":memory:" in path or path.startswith("file:") else Path(path)


@contextlib.contextmanager
def creation_lock(uri: str) -> Iterator[None]:
    """For a local SQLite store: one process at a time opens (and maybe creates) it, so that two processes
    never run MLflow's schema migrations on the same fresh file at once (a lock file kept in the temp folder)."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    from filelock import FileLock

    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    with FileLock(str(Path(tempfile.gettempdir()) / f"mlbench-store-{key}.lock")):
        yield


#: The first bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"


def check_sqlite_file(uri: str, option: str) -> None:
    """Fail at once, in one line, for a SQLite URI that cannot be a database: a folder or another special
    file (a usage error: the option names the wrong thing), or a file that is not SQLite. ``option`` names
    where the URI came from (``--tracking-uri``)."""
    from mlbench.runs.redaction import redact

    path = sqlite_path(uri)
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{option} {redact(uri)}: {path} is a folder, not a database file")
    if path.exists() and not path.is_file():
        raise UsageError(f"{option} {redact(uri)}: {path} is not a regular file")
    if path.is_file() and path.stat().st_size > 0:
        try:
            with open(path, "rb") as f:
                head = f.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise MlbenchError(f"{option} {redact(uri)}: cannot read {path} ({exc.strerror})") from exc
        if head != SQLITE_HEADER:
            raise MlbenchError(f"{option} {redact(uri)}: {path} is not a SQLite database")


def probe_server_database(uri: str, option: str, timeout_s: int = 10) -> None:
    """One connection to a database server (PostgreSQL, MySQL), so that a wrong host or password fails in
    seconds: MLflow retries creating its engine for about 100 s before it gives up."""
    from mlbench.runs.redaction import redact

    if not uri.startswith(("postgresql", "mysql")):
        return
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    try:
        engine = create_engine(uri, poolclass=NullPool, connect_args={"connect_timeout": timeout_s})
    except ImportError as exc:
        raise MlbenchError(f"{option} {redact(uri)}: missing database driver ({exc}); for PostgreSQL: "
                           "pip install 'mlbench-harness[distributed]'") from exc
    except Exception as exc:  # SQLAlchemy cannot read the URL
        raise MlbenchError(f"{option} {redact(uri)}: {type(exc).__name__}: {redact(str(exc))}") from exc
    try:
        with engine.connect():
            pass
    except Exception as exc:
        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        raise MlbenchError(f"{option} {redact(uri)}: cannot connect: {type(exc).__name__}: {redact(detail)}") from exc
    finally:
        engine.dispose()


def _remove_quietly(path: Path) -> None:
    for extra in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            Path(str(path) + extra).unlink()


def create_sqlite_atomically(uri: str, make: Callable[[str], None], replace: bool = False) -> bool:
    """Build a fresh SQLite store whole or not at all; call it under :func:`creation_lock`.

    When ``uri``'s file is absent or empty (or ``replace``: a half-made store to rebuild), ``make(temp_uri)``
    creates the schema in a temporary file beside it (``.<name>.creating-*``), which is then renamed over
    the name: an interruption leaves the old state, never a half-made schema. Temporary files of an earlier,
    killed creation are removed first (the lock says nobody else is creating). Returns whether it built one.
    """
    path = sqlite_path(uri)
    if path is None or (not replace and path.is_file() and path.stat().st_size > 0):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.creating-"
    for stale in path.parent.glob(prefix + "*"):
        _remove_quietly(stale)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".db")
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create {path} ({exc.strerror})") from exc
    os.close(fd)
    temp = Path(name)
    try:
        query = uri.partition("?")[2]
        make(f"sqlite:///{temp.resolve()}" + (f"?{query}" if query else ""))
        os.replace(temp, path)
    finally:
        _remove_quietly(temp)
    return True


def make_mlflow_schema(temp_uri: str) -> None:
    """MLflow's tables, migrations and default experiment in the SQLite file of ``temp_uri``, its engine closed.

    Built by MLflow's own store class with the artifact root MLflow itself would give it; the engine is
    taken out of MLflow's per-URI engine cache (a private attribute, read defensively) and closed, so no
    connection stays open on the file about to be renamed.
    """
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    root = os.environ.get("_MLFLOW_SERVER_ARTIFACT_ROOT", DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH)
    try:
        SqlAlchemyStore(temp_uri, root)
    finally:
        forget_engine(temp_uri)


def forget_engine(uri: str) -> None:
    """Close and drop MLflow's cached engine of ``uri`` (before its file is replaced)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    engine = getattr(SqlAlchemyStore, "_engine_map", {}).pop(uri, None)
    if engine is not None:
        engine.dispose()


#: Tables a fresh MLflow store fills itself: rows there are not the user's.
SCHEMA_ROWS = ("alembic_version", "workspaces")


def holds_no_runs(path: Path) -> bool:
    """Whether a SQLite file holds nothing of the user's: every table empty except the schema's own
    bookkeeping and MLflow's default experiment (what a creation interrupted half-way leaves)."""
    import sqlite3

    try:
        con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return False
    try:
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            if table in SCHEMA_ROWS or table.startswith(("_alembic_tmp_", "sqlite_")):
                continue
            query = f'SELECT COUNT(*) FROM "{table}"'
            if table == "experiments":
                query += " WHERE experiment_id != 0"
            if con.execute(query).fetchone()[0]:
                return False
        return True
    except sqlite3.Error:
        return False
    finally:
        con.close()


#: What a process sees while another one creates the same fresh SQLite store.
SCHEMA_RACE = ("duplicate column", "already exists", "database is locked", "unique constraint", "no such table",
                "alembic_version")
#: What a half-made schema answers (the race above without the lock), where it is not a busy file.
SCHEMA_BROKEN = ("duplicate column", "already exists", "no such table", "alembic")


def is_schema_error(exc: BaseException | None) -> bool:
    return exc is not None and any(text in str(exc).lower() for text in SCHEMA_BROKEN)


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


def with_postgres_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed.

    SQLAlchemy 2.0 reads a bare ``postgresql://`` as psycopg2, 2.1 as psycopg 3;
    naming the installed one makes the same URL work under both.
    """
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    for module, dialect in (("psycopg2", "psycopg2"), ("psycopg", "psycopg")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{dialect}://" + url[len("postgresql://"):]
    return url
